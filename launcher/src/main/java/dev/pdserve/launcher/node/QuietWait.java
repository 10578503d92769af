package dev.pdserve.launcher.node;

import com.google.common.base.Ticker;
import java.time.Duration;
import java.util.function.IntSupplier;
import java.util.function.LongSupplier;

/**
 * An expert shard's drain wait, once it left the expert placement: callers may have read the
 * placement just before it changed, so it waits until no dispatch has run or arrived for {@code
 * quiet} on the node's clock, or until the drain's deadline.
 */
final class QuietWait {
  /** How long without a dispatch counts as quiet. */
  static final Duration QUIET = Duration.ofMillis(200);

  private static final Duration POLL = Duration.ofMillis(10);

  private final Ticker ticker;
  private final Duration quiet;
  private final Pause pause;

  QuietWait(Ticker ticker, Duration quiet, Pause pause) {
    this.ticker = ticker;
    this.quiet = quiet;
    this.pause = pause;
  }

  /** {@link #QUIET} on {@code ticker}, looking every 10 ms. */
  static QuietWait onClock(Ticker ticker) {
    return new QuietWait(ticker, QUIET, Pause.sleeping(POLL));
  }

  /**
   * @param running dispatches being computed now
   * @param arrivals a value that changes whenever a dispatch arrives (e.g. its arrival time)
   * @return whether it went quiet before the deadline (false also when interrupted)
   */
  boolean await(Deadline deadline, IntSupplier running, LongSupplier arrivals) {
    long seen = arrivals.getAsLong();
    long quietSince = ticker.read();
    while (!deadline.passed()) {
      long now = ticker.read();
      long arrived = arrivals.getAsLong();
      if (running.getAsInt() > 0 || arrived != seen) {
        seen = arrived;
        quietSince = now;
      } else if (now - quietSince >= quiet.toNanos()) {
        return true;
      }
      try {
        pause.pause();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return false;
      }
    }
    return false;
  }
}
