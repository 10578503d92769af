package dev.pdserve.router;

/**
 * How many requests may await their first token at once: a congestion window driven by the time to
 * first token itself, beside {@link OverloadGuard}'s forecast. The forecast models one bottleneck
 * (queued prompt tokens over the prefill throughput); the window needs no model, so it also holds
 * when the bottleneck is elsewhere (decode seats, the KV handoff) or the load jumps to a point the
 * measured rates never saw — the onset of a burst, when every rate and lag still describes the calm
 * before it.
 *
 * <p>It works as TCP's congestion window does, with a late first token for a lost packet. A first
 * token within the {@link #TARGET_FRACTION target} (that fraction of the bound) while the window is
 * at least half used widens it: by {@link #SLOW_START_GAIN} per first token while in slow start
 * (from {@link #INITIAL}, and at most {@link #SLOW_START_EPOCH_GROWTH} times itself per target's
 * length of time), by one per window's worth of first tokens afterwards. A late one — or a request
 * still waiting past the target — narrows it to {@link #BACKOFF} of itself, at most once per round
 * trip (the latest time to first token, at least {@link #MIN_BACKOFF_INTERVAL_NANOS} ns), and ends
 * slow start; it starts again after {@link #IDLE_RESTART_NANOS} ns with nothing waiting. The window
 * never goes below {@link #MIN}. Not thread-safe: {@link OverloadGuard} holds its lock around every
 * call.
 */
final class AdmissionWindow {
  /** The window of a fresh router (or one idle for a while) while slow start grows it. */
  static final double INITIAL = 64;

  /** The window never shrinks below this. */
  static final double MIN = 4;

  /**
   * What an on-time first token adds in slow start: less than TCP's 1, so the window grows by half
   * per round trip and overshoots the point where first tokens turn late by about that much (the
   * target, 0.6 of the bound, times 1.5 stays within the bound) before the first late one shows.
   */
  static final double SLOW_START_GAIN = 0.5;

  /**
   * In slow start the window grows only on first tokens within half the target (so it stops growing
   * as they slow, before they are late), and at most by this factor per epoch of the target's
   * length, however fast first tokens come: at a burst's onset they come fastest while the decode
   * seats are still empty, and the drain rate falls once they fill.
   */
  static final double SLOW_START_EPOCH_GROWTH = 1.5;

  /** A first token later than this fraction of the bound is late. */
  static final double TARGET_FRACTION = 0.6;

  /** What a late first token leaves of the window. */
  static final double BACKOFF = 0.7;

  /** Two narrowings are at least this far apart (and at least the latest time to first token). */
  static final long MIN_BACKOFF_INTERVAL_NANOS = 100_000_000L;

  /** With nothing waiting this long, slow start begins again at the current window. */
  static final long IDLE_RESTART_NANOS = 5_000_000_000L;

  private final long targetNanos;
  private double window = INITIAL;
  private boolean slowStart = true;
  private long lastBackoffAt;
  private boolean backedOff;
  private long lastTtftNanos;
  private long idleSince;
  private long epochStart;
  private double epochBase = INITIAL;
  private boolean anyEpoch;
  private boolean idle = true;

  /**
   * @param boundNanos the bound on the queueing delay ({@code pdserve.router.max-queue-delay}), > 0
   */
  AdmissionWindow(long boundNanos) {
    this.targetNanos = (long) (boundNanos * TARGET_FRACTION);
  }

  /** Whether one more request may start waiting now, with {@code waiting} waiting already. */
  boolean admits(int waiting) {
    return waiting == 0 || waiting < (int) window;
  }

  /** The window now (requests awaiting their first token). */
  int size() {
    return (int) window;
  }

  /** The time to first token beyond which a first token counts as late. */
  long targetNanos() {
    return targetNanos;
  }

  /**
   * Late: past the target, or in slow start past half of it — slow start only widens on first
   * tokens within half the target, and ends as soon as they, or a waiting request, pass it.
   */
  private long lateNanos() {
    return slowStart ? targetNanos / 2 : targetNanos;
  }

  /** Whether the window is still in slow start. */
  boolean slowStart() {
    return slowStart;
  }

  /**
   * A request admitted at {@code now}; {@code waiting} were waiting before it (restarts slow start
   * after an idle spell).
   */
  void admitted(long now, int waiting) {
    if (waiting == 0 && idle && now - idleSince >= IDLE_RESTART_NANOS) {
      slowStart = true;
    }
    idle = false;
  }

  /**
   * A first token came {@code ttftNanos} after its request arrived, at {@code now}, with {@code
   * waiting} requests (itself no longer among them) still waiting.
   */
  void firstToken(long now, long ttftNanos, int waiting) {
    lastTtftNanos = ttftNanos;
    if (ttftNanos > lateNanos()) {
      late(now);
    } else if ((waiting + 1) * 2 >= window) {
      if (!slowStart) {
        window += 1 / window;
      } else {
        if (!anyEpoch || now - epochStart >= targetNanos) {
          anyEpoch = true;
          epochStart = now;
          epochBase = window;
        }
        window = Math.min(window + SLOW_START_GAIN, epochBase * SLOW_START_EPOCH_GROWTH);
      }
    }
    noteIdle(now, waiting);
  }

  /** The oldest of the waiting requests (ignoring stragglers) has waited {@code ageNanos}. */
  void waitingAge(long now, long ageNanos) {
    if (ageNanos > lateNanos()) {
      late(now);
    }
  }

  /** A request ended without a first token; {@code waiting} are still waiting. */
  void ended(long now, int waiting) {
    noteIdle(now, waiting);
  }

  private void noteIdle(long now, int waiting) {
    if (waiting == 0 && !idle) {
      idle = true;
      idleSince = now;
    }
  }

  private void late(long now) {
    long interval = Math.max(MIN_BACKOFF_INTERVAL_NANOS, Math.min(targetNanos, lastTtftNanos));
    if (backedOff && now - lastBackoffAt < interval) {
      return;
    }
    window = Math.max(MIN, window * BACKOFF);
    slowStart = false;
    backedOff = true;
    lastBackoffAt = now;
  }
}
