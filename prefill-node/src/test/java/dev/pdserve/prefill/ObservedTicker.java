package dev.pdserve.prefill;

import com.google.common.base.Ticker;
import java.time.Duration;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

/**
 * A ticker reading another (a test's {@code FakeTicker}) that tells the test when someone read it:
 * how a test knows a drain has fixed its deadline before it moves the clock.
 */
final class ObservedTicker extends Ticker {
  private final Ticker clock;
  private final Semaphore reads = new Semaphore(0);

  ObservedTicker(Ticker clock) {
    this.clock = clock;
  }

  @Override
  public long read() {
    long now = clock.read();
    reads.release(); // after the read: whoever waits for it sees a reader that has its time
    return now;
  }

  /** Forgets the reads so far. */
  void forgetReads() {
    reads.drainPermits();
  }

  /**
   * Waits for a read after the last {@link #forgetReads()}; false if none came in {@code within}.
   */
  boolean awaitRead(Duration within) throws InterruptedException {
    return reads.tryAcquire(within.toNanos(), TimeUnit.NANOSECONDS);
  }
}
