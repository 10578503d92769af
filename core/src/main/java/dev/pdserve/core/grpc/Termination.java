package dev.pdserve.core.grpc;

import com.google.common.base.Ticker;
import java.util.concurrent.TimeUnit;

/**
 * Waits for a gRPC server or channel to terminate until a deadline read from a {@link Ticker}: in
 * slices of at most {@link #SLICE_NANOS}, so that the ticker, not the wait, decides when the
 * deadline has passed.
 */
final class Termination {
  static final long SLICE_NANOS = TimeUnit.MILLISECONDS.toNanos(50);

  /** A server's or channel's {@code awaitTermination}. */
  @FunctionalInterface
  interface Awaitable {
    boolean awaitTermination(long timeout, TimeUnit unit) throws InterruptedException;
  }

  private Termination() {}

  /** True once {@code target} has terminated; false if {@code ticker} passed the deadline first. */
  static boolean awaitUntil(Awaitable target, Ticker ticker, long deadlineNanos)
      throws InterruptedException {
    while (true) {
      long left = deadlineNanos - ticker.read();
      if (left <= 0) {
        return target.awaitTermination(0, TimeUnit.NANOSECONDS);
      }
      if (target.awaitTermination(Math.min(left, SLICE_NANOS), TimeUnit.NANOSECONDS)) {
        return true;
      }
    }
  }
}
