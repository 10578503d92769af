package dev.pdserve.launcher.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.testing.FakeTicker;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** The expert shard's drain wait on a driven clock: each pause advances it by 10 ms. */
class QuietWaitTest {
  private static final Duration STEP = Duration.ofMillis(10);
  private static final Duration QUIET = Duration.ofMillis(200);

  private final FakeTicker ticker = new FakeTicker();
  private final AtomicInteger pauses = new AtomicInteger();
  private final AtomicInteger running = new AtomicInteger();
  private final AtomicLong arrivals = new AtomicLong();
  private Runnable atEachPause = () -> {};

  private QuietWait quietWait() {
    return new QuietWait(
        ticker,
        QUIET,
        () -> {
          pauses.incrementAndGet();
          atEachPause.run();
          ticker.advance(STEP);
        });
  }

  private boolean await(Duration timeout) {
    return quietWait().await(Deadline.after(ticker, timeout), running::get, arrivals::get);
  }

  @Test
  void anIdleShardIsQuietOnceTheQuietPeriodPassedOnTheNodesClock() {
    assertTrue(await(Duration.ofSeconds(10)), "an idle shard goes quiet");
    assertEquals(QUIET.dividedBy(STEP), pauses.get(), "pauses of 10 ms until 200 ms passed");
  }

  @Test
  void aDispatchArrivingWhileItWaitsStartsTheQuietPeriodAgain() {
    atEachPause =
        () -> {
          if (pauses.get() == 5) {
            arrivals.incrementAndGet(); // a caller that read the old placement
          }
        };
    assertTrue(await(Duration.ofSeconds(10)));
    assertEquals(5 + QUIET.dividedBy(STEP), pauses.get(), "quiet 200 ms after the late dispatch");
  }

  @Test
  void aDispatchStillRunningAtTheDeadlineEndsTheWaitUnquiet() {
    running.set(1);
    assertFalse(await(Duration.ofMillis(500)), "never quiet while a dispatch runs");
    assertEquals(Duration.ofMillis(500).dividedBy(STEP), pauses.get(), "waited to the deadline");
  }
}
