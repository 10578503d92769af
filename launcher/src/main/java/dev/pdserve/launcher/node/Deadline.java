package dev.pdserve.launcher.node;

import java.time.Duration;

/** A point in {@link System#nanoTime()} time that a drain must end by. */
record Deadline(long nanos) {
  static Deadline after(Duration d) {
    return new Deadline(System.nanoTime() + d.toNanos());
  }

  /** Time left, never negative. */
  Duration remaining() {
    return Duration.ofNanos(Math.max(0, nanos - System.nanoTime()));
  }

  /** Time left, at least {@code min} and at most {@code max}. */
  Duration remaining(Duration min, Duration max) {
    Duration r = remaining();
    return r.compareTo(min) < 0 ? min : r.compareTo(max) > 0 ? max : r;
  }

  boolean passed() {
    return System.nanoTime() - nanos >= 0;
  }
}
