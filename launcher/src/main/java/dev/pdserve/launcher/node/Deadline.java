package dev.pdserve.launcher.node;

import com.google.common.base.Ticker;
import java.time.Duration;

/** A point on a node's clock ({@code ticker}, nanoseconds) that a drain must end by. */
record Deadline(Ticker ticker, long nanos) {
  static Deadline after(Ticker ticker, Duration d) {
    return new Deadline(ticker, ticker.read() + d.toNanos());
  }

  /** Time left, never negative. */
  Duration remaining() {
    return Duration.ofNanos(Math.max(0, nanos - ticker.read()));
  }

  /** Time left, at least {@code min} and at most {@code max}. */
  Duration remaining(Duration min, Duration max) {
    Duration r = remaining();
    return r.compareTo(min) < 0 ? min : r.compareTo(max) > 0 ? max : r;
  }

  boolean passed() {
    return ticker.read() - nanos >= 0;
  }
}
