package dev.pdserve.launcher.node;

import com.google.common.base.Ticker;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashMap;
import java.util.Map;

/**
 * Whether {@code pdserve local} starts a child process again after it died: at most {@link
 * Limits#limit()} restarts of one child within {@link Limits#window()}, each after an exponential
 * back-off ({@code firstDelay}, doubled per restart still in the window, at most {@code maxDelay});
 * past the limit the cluster is given up. Time is read from the ticker given. Thread-safe.
 */
public final class ChildRestarts {
  /**
   * @param limit restarts of one child allowed within {@code window} ({@code
   *     pdserve.local.restart-limit}); 0 = never restart
   * @param window restarts older than this no longer count ({@code pdserve.local.restart-window})
   * @param firstDelay back-off before the first restart
   * @param maxDelay longest back-off
   */
  public record Limits(int limit, Duration window, Duration firstDelay, Duration maxDelay) {
    public static final int DEFAULT_LIMIT = 3;
    public static final Duration DEFAULT_WINDOW = Duration.ofMinutes(10);

    public Limits {
      if (limit < 0) {
        throw new IllegalArgumentException("restart limit must be >= 0, got " + limit);
      }
      if (window.isNegative()
          || firstDelay.isNegative()
          || maxDelay.isNegative()
          || maxDelay.compareTo(firstDelay) < 0) {
        throw new IllegalArgumentException(
            "restart window and delays must be >= 0 and maxDelay >= firstDelay, got "
                + window
                + ", "
                + firstDelay
                + ", "
                + maxDelay);
      }
    }

    /** {@code limit} within {@code window}, backing off from 1 s up to 30 s. */
    public static Limits of(int limit, Duration window) {
      return new Limits(limit, window, Duration.ofSeconds(1), Duration.ofSeconds(30));
    }
  }

  /**
   * What to do about a child that exited.
   *
   * @param restart whether to start it again
   * @param delay how long to wait first (zero when giving up)
   * @param attempt which restart within the window this is (1-based); when giving up, the restarts
   *     already spent
   * @param limit the limit
   */
  public record Decision(boolean restart, Duration delay, int attempt, int limit) {}

  private final Limits limits;
  private final Ticker ticker;
  private final Map<String, Deque<Long>> restarts = new HashMap<>();

  public ChildRestarts(Limits limits, Ticker ticker) {
    this.limits = limits;
    this.ticker = ticker;
  }

  public Limits limits() {
    return limits;
  }

  /** Child {@code id} exited: restart it (after the decision's delay) or give up. */
  public synchronized Decision exited(String id) {
    long now = ticker.read();
    Deque<Long> times = restarts.computeIfAbsent(id, x -> new ArrayDeque<>());
    while (!times.isEmpty() && now - times.peekFirst() >= limits.window().toNanos()) {
      times.removeFirst();
    }
    if (times.size() >= limits.limit()) {
      return new Decision(false, Duration.ZERO, times.size(), limits.limit());
    }
    int attempt = times.size() + 1;
    times.addLast(now);
    Duration delay = limits.firstDelay();
    for (int i = 1; i < attempt && delay.compareTo(limits.maxDelay()) < 0; i++) {
      delay = delay.multipliedBy(2);
    }
    if (delay.compareTo(limits.maxDelay()) > 0) {
      delay = limits.maxDelay();
    }
    return new Decision(true, delay, attempt, limits.limit());
  }

  /**
   * The line {@code pdserve local} prints: {@code child e1 exited with code 137; restarting in 1s
   * (attempt 1 of 3)}, or that it gives up.
   */
  public String describe(String id, int exitCode, Decision d) {
    String head = "child " + id + " exited with code " + exitCode;
    if (d.restart()) {
      return head
          + "; restarting in "
          + seconds(d.delay())
          + " (attempt "
          + d.attempt()
          + " of "
          + d.limit()
          + ")";
    }
    return head
        + "; it was restarted "
        + d.attempt()
        + " time(s) within "
        + seconds(limits.window())
        + " already (pdserve.local.restart-limit = "
        + d.limit()
        + "); stopping the cluster";
  }

  private static String seconds(Duration d) {
    long ms = d.toMillis();
    return ms % 1000 == 0 ? ms / 1000 + "s" : ms + "ms";
  }
}
