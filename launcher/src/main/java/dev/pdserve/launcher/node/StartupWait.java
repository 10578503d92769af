package dev.pdserve.launcher.node;

import com.google.common.base.Ticker;
import java.time.Duration;
import java.util.Optional;
import java.util.function.Supplier;

/**
 * A bounded wait, on the node's clock, for something a node needs before it can serve: a data
 * member holding the registry (a router is a lite member), an expert placement covering every
 * expert (a worker with remote experts).
 */
final class StartupWait {
  /** How long a node waits for what it needs before it gives up starting. */
  static final Duration BOUND = Duration.ofMinutes(3);

  private static final Duration POLL = Duration.ofMillis(100);

  private final Ticker ticker;
  private final Duration bound;
  private final Pause pause;

  StartupWait(Ticker ticker, Duration bound, Pause pause) {
    this.ticker = ticker;
    this.bound = bound;
    this.pause = pause;
  }

  /** Waits up to {@link #BOUND} on {@code ticker}, looking every 100 ms. */
  static StartupWait onClock(Ticker ticker) {
    return new StartupWait(ticker, BOUND, Pause.sleeping(POLL));
  }

  /**
   * Asks {@code probe} until it answers and returns the answer.
   *
   * @param firstWait run once, when the first answer is empty (to say what the node waits for)
   * @param timedOut the message of the {@link IllegalStateException} thrown once the bound passed
   * @param what what is waited for, in the message of the exception thrown if interrupted
   */
  <T> T await(
      Supplier<Optional<T>> probe, Runnable firstWait, Supplier<String> timedOut, String what) {
    long deadline = ticker.read() + bound.toNanos();
    boolean waited = false;
    while (true) {
      Optional<T> answer = probe.get();
      if (answer.isPresent()) {
        return answer.get();
      }
      if (ticker.read() - deadline > 0) {
        throw new IllegalStateException(timedOut.get());
      }
      if (!waited) {
        firstWait.run();
        waited = true;
      }
      try {
        pause.pause();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted while waiting for " + what, e);
      }
    }
  }
}
