package dev.pdserve.launcher.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.google.common.testing.FakeTicker;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** A node's bounded start-up wait on a driven clock: each pause advances it by 100 ms. */
class StartupWaitTest {
  private final FakeTicker ticker = new FakeTicker();
  private final AtomicInteger asked = new AtomicInteger();
  private final AtomicInteger firstWaits = new AtomicInteger();
  private final StartupWait wait =
      new StartupWait(ticker, Duration.ofSeconds(1), () -> ticker.advance(Duration.ofMillis(100)));

  @Test
  void returnsTheFirstAnswerAndSaysOnceThatItWaits() {
    String got =
        wait.await(
            () -> asked.incrementAndGet() < 4 ? Optional.empty() : Optional.of("worker"),
            firstWaits::incrementAndGet,
            () -> "never",
            "a worker");
    assertEquals("worker", got);
    assertEquals(4, asked.get(), "asked until it answered");
    assertEquals(1, firstWaits.get(), "the waiting line is logged once");
  }

  @Test
  void givesUpOnceTheBoundPassedOnTheNodesClock() {
    IllegalStateException e =
        assertThrows(
            IllegalStateException.class,
            () ->
                wait.await(
                    () -> {
                      asked.incrementAndGet();
                      return Optional.empty();
                    },
                    firstWaits::incrementAndGet,
                    () -> "no worker joined the cluster within 1 second",
                    "a worker"));
    assertEquals("no worker joined the cluster within 1 second", e.getMessage());
    assertEquals(12, asked.get(), "asked at 0, 100, ..., 1100 ms: past the 1 s bound at the last");
  }

  @Test
  void anInterruptedWaitSaysWhatItWaitedFor() {
    StartupWait interrupted =
        new StartupWait(
            ticker,
            Duration.ofSeconds(1),
            () -> {
              throw new InterruptedException();
            });
    IllegalStateException e =
        assertThrows(
            IllegalStateException.class,
            () -> interrupted.await(Optional::empty, () -> {}, () -> "never", "expert shards"));
    assertEquals("interrupted while waiting for expert shards", e.getMessage());
    assertEquals(true, Thread.interrupted(), "the interrupt is kept (and cleared here)");
  }
}
