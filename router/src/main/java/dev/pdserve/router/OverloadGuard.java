package dev.pdserve.router;

import com.google.common.base.Ticker;
import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.serving.ServingException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Refuses, at admission, requests that could not get their first token within {@link
 * OverloadLimits#maxQueueDelay()}, so the requests admitted keep their latency.
 *
 * <p>The forecast has two parts. The <b>queue</b>: the prompt tokens ahead of a new request — those
 * of every request this router took whose first token has not come yet (queued here, reserving,
 * prefilling, its KV on the way), plus what the ACTIVE prefill nodes report queued beyond what this
 * router sent them (other routers' work) — over the prompt throughput the router measured. The
 * <b>lag</b>: how much later than forecast the recent first tokens came — the {@value
 * #LAG_QUANTILE} quantile, over the last {@link #LAG_WINDOW_NANOS} ns, of (time to first token) −
 * (the forecast made when the request was admitted, its own prompt included), never below zero. The
 * lag is what the queue alone does not see: the pipeline's own latency (a prefill batch, the KV
 * push, the decode step the first token waits for), which grows with load, and the forecast's
 * error. Requests still waiting count too, before their first token comes: their age beyond their
 * forecast (the {@code (2 + n/100)}-th largest of the {@code n} waiting, so that one stuck request
 * does not decide it); the lag is the larger of the two. A request is refused when queue + lag
 * exceeds the bound, so the bound holds for the admitted requests' time to first token at that
 * quantile, not only for their mean. A request with nothing ahead of it is always admitted: an idle
 * cluster serves a long prompt, and a backlog that drained lets requests in again to measure the
 * lag afresh. A request's own prompt is not part of its queueing delay.
 *
 * <p>Both parts are models of what happened; at the onset of a burst they still describe the calm
 * before it, and a bottleneck after prefill (decode seats) shows in them only as lag, a time to
 * first token later. So a second gate holds beside them: an {@link AdmissionWindow} on how many
 * requests may wait for their first token at once, widened by first tokens that come within a
 * target, narrowed by later ones and by requests waiting past it, as a congestion window is.
 *
 * <p>The throughput is measured from first tokens: when a request's first token arrives and the
 * request was already waiting when the previous first token arrived, the router was busy for the
 * whole gap, so its prompt tokens over the gap are a sample of how fast the backlog drains (the
 * gaps of parallel prefill nodes interleave, so the samples add up to the cluster's rate). The rate
 * is the quotient of the samples' tokens and gaps, each weighted by its age (a time constant of
 * {@link #RATE_TIME_CONSTANT_NANOS} ns): weighting by time, not by sample, keeps a burst of first
 * tokens from one batch (many samples, gaps of zero but the first) from counting as a rate the
 * cluster never had. A request that arrived to an idle router measures latency, not throughput, and
 * is not a sample. Until the first sample the rate is {@link
 * OverloadLimits#prefillTokensPerSecond()} per ACTIVE prefill node. Times are the router's ticker
 * readings.
 *
 * <p>The decision and the taking of a request are one step (under this object's lock), so requests
 * arriving together cannot all pass on the same backlog. Memory: the requests awaiting their first
 * token are bounded by the router's admission limits, the lag samples by {@link #LAG_SAMPLES}; a
 * refused request leaves nothing behind.
 */
final class OverloadGuard {
  /** The time constant of the throughput estimate's weights. */
  static final long RATE_TIME_CONSTANT_NANOS = 2_000_000_000L;

  /** How long a first token's lag counts. */
  static final long LAG_WINDOW_NANOS = 5_000_000_000L;

  /** The quantile of the recent lags added to the queue forecast. */
  static final double LAG_QUANTILE = 0.99;

  /** At most this many lag samples are kept (the oldest go first). */
  static final int LAG_SAMPLES = 2048;

  private final OverloadLimits limits;
  private final ClusterView nodes;
  private final NodeSelector selector;
  private final Ticker ticker;
  private final AdmissionWindow window; // null without a bound

  /** Requests awaiting their first token, with the forecast (ns to first token) they were given. */
  private final Map<InFlightRequest, Long> waiting = new ConcurrentHashMap<>();

  private final AtomicLong waitingTokens = new AtomicLong();

  // guarded by this
  private boolean anyFirstToken;
  private long lastFirstTokenNanos;
  private boolean measured;
  private double weightedTokens;
  private double weightedNanos;
  private long weightedAt;
  private final ArrayDeque<long[]> lags = new ArrayDeque<>(); // {at, lag ns}
  private long lagNanos; // the quantile of lags, >= 0

  /** The forecast for a request arriving now. */
  record Forecast(long tokensAhead, double tokensPerSecond, boolean measured, Duration lag) {
    /** The predicted wait for the prompts ahead. */
    Duration delay() {
      return nanosFor(tokensAhead);
    }

    /** The predicted wait for the prompts ahead plus the recent lag: what the bound is held to. */
    Duration expected() {
      return delay().plus(lag);
    }

    Duration nanosFor(long tokens) {
      return Duration.ofNanos((long) Math.ceil(tokens * 1e9 / tokensPerSecond));
    }
  }

  OverloadGuard(OverloadLimits limits, ClusterView nodes, NodeSelector selector, Ticker ticker) {
    this.limits = limits;
    this.nodes = nodes;
    this.selector = selector;
    this.ticker = ticker;
    Duration bound = limits.maxQueueDelay();
    this.window = bound.isZero() ? null : new AdmissionWindow(bound.toNanos());
  }

  /**
   * Takes {@code f} (its prompt is ahead of later requests until its first token), or refuses it if
   * its predicted wait exceeds the bound.
   *
   * @throws ServingException RESOURCE_EXHAUSTED saying the prediction, the bound and when to retry
   */
  synchronized void admit(InFlightRequest f) {
    Duration bound = limits.maxQueueDelay();
    long forecastNanos = 0; // with no bound nothing reads the forecasts
    if (!bound.isZero()) {
      Forecast fc = forecast();
      if (fc.tokensAhead() > 0 && fc.expected().compareTo(bound) > 0) {
        throw refusal(fc, bound);
      }
      long now = ticker.read();
      int n = waiting.size();
      window.waitingAge(now, waitingAge(now));
      if (!window.admits(n)) {
        throw windowRefusal(n, bound);
      }
      window.admitted(now, n);
      forecastNanos = fc.delay().plus(fc.nanosFor(f.prompt().length)).toNanos();
    }
    if (waiting.putIfAbsent(f, forecastNanos) == null) {
      waitingTokens.addAndGet(f.prompt().length);
    }
  }

  private static ServingException refusal(Forecast f, Duration bound) {
    Duration expected = f.expected();
    long retryMillis = Math.max(1, expected.minus(bound).toMillis());
    String lag =
        f.lag().isZero()
            ? ""
            : String.format(
                Locale.ROOT,
                " and %.1f s that recent first tokens came later than forecast",
                f.lag().toMillis() / 1000.0);
    return ServingException.exhausted(
        String.format(
            Locale.ROOT,
            "router overloaded: a new request would wait about %.1f s for the %d prompt tokens"
                + " ahead of it (at %.0f prompt tokens/s, %s%s), more than the %.1f s allowed"
                + " (pdserve.router.max-queue-delay); retry after %d ms",
            expected.toMillis() / 1000.0,
            f.tokensAhead(),
            f.tokensPerSecond(),
            f.measured() ? "as measured" : "assumed until measured",
            lag,
            bound.toMillis() / 1000.0,
            retryMillis));
  }

  private ServingException windowRefusal(int n, Duration bound) {
    long retryMillis = Math.max(1, window.targetNanos() / 1_000_000L / Math.max(1, n));
    return ServingException.exhausted(
        String.format(
            Locale.ROOT,
            "router overloaded: %d requests are waiting for their first token, as many as this"
                + " router lets wait while recent first tokens come %s %.1f s (%.0f %% of the"
                + " %.1f s allowed, pdserve.router.max-queue-delay); retry after %d ms",
            n,
            window.slowStart() ? "within" : "near or past",
            window.targetNanos() / 1e9,
            AdmissionWindow.TARGET_FRACTION * 100,
            bound.toMillis() / 1000.0,
            retryMillis));
  }

  /** How many requests may await their first token at once now (0 without a bound). */
  synchronized int admissionWindow() {
    return window == null ? 0 : window.size();
  }

  /** The forecast for a request arriving now. */
  Forecast forecast() {
    List<NodeInfo> prefill = nodes.active(NodeRole.PREFILL);
    long ahead = waitingTokens.get();
    for (NodeInfo n : prefill) {
      Load l = n.load();
      long reported = l == null ? 0 : l.queuedPromptTokens();
      ahead += Math.max(0, reported - selector.prefillTokensInFlight(n.id()));
    }
    synchronized (this) {
      long now = ticker.read();
      Duration lag = Duration.ofNanos(Math.max(currentLag(now), waitingLateness(now)));
      if (measured && weightedNanos > 0) {
        return new Forecast(ahead, weightedTokens * 1e9 / weightedNanos, true, lag);
      }
      return new Forecast(
          ahead, limits.prefillTokensPerSecond() * Math.max(1, prefill.size()), false, lag);
    }
  }

  /** {@code f}'s first token reached the router at {@code now}: a throughput and lag sample. */
  void firstToken(InFlightRequest f, long now) {
    Long forecastNanos = waiting.remove(f);
    if (forecastNanos == null) {
      return;
    }
    int tokens = f.prompt().length;
    waitingTokens.addAndGet(-tokens);
    long arrival = f.prepared().arrivalNanos();
    synchronized (this) {
      if (anyFirstToken && arrival - lastFirstTokenNanos <= 0) {
        long gap = Math.max(0, now - lastFirstTokenNanos);
        if (measured) {
          double keep =
              Math.exp(-Math.max(0, now - weightedAt) / (double) RATE_TIME_CONSTANT_NANOS);
          weightedTokens *= keep;
          weightedNanos *= keep;
        }
        weightedTokens += tokens;
        weightedNanos += gap;
        weightedAt = now;
        measured = true;
      }
      if (!anyFirstToken || now - lastFirstTokenNanos > 0) {
        lastFirstTokenNanos = now;
      }
      anyFirstToken = true;
      addLag(now, (now - arrival) - forecastNanos);
      if (window != null) {
        window.firstToken(now, now - arrival, waiting.size());
      }
    }
  }

  /** {@code f} ended (with or without a first token): it is no longer ahead of anyone. */
  void ended(InFlightRequest f) {
    if (waiting.remove(f) != null) {
      waitingTokens.addAndGet(-f.prompt().length);
      if (window != null) {
        synchronized (this) {
          window.ended(ticker.read(), waiting.size());
        }
      }
    }
  }

  /**
   * The age of the waiting requests, ignoring stragglers: the {@code (2 + n/100)}-th oldest of the
   * {@code n} waiting (0 if fewer), so one stuck request does not narrow the window.
   */
  private long waitingAge(long now) {
    return kthLargest(now, false);
  }

  // guarded by this
  private void addLag(long now, long lag) {
    if (lags.size() == LAG_SAMPLES) {
      lags.removeFirst();
    }
    lags.addLast(new long[] {now, lag});
    expire(now);
    lagNanos = quantile();
  }

  // guarded by this
  private long currentLag(long now) {
    if (expire(now)) {
      lagNanos = quantile();
    }
    return lagNanos;
  }

  /**
   * How late the requests still waiting for their first token already are (their age beyond the
   * forecast they were given): the {@code (2 + n/100)}-th largest of the {@code n} waiting, so
   * lateness shows before the first tokens come, yet one stuck request (a migration, a frozen node)
   * does not close admission for everyone.
   */
  private long waitingLateness(long now) {
    return kthLargest(now, true);
  }

  /** The (2 + n/100)-th largest age (beyond the forecast, if {@code late}) of the waiting, >= 0. */
  private long kthLargest(long now, boolean late) {
    int n = waiting.size();
    int k = 2 + n / 100;
    if (n < k) {
      return 0;
    }
    long[] top = new long[k]; // the k largest so far, ascending; top[0] is the k-th largest
    Arrays.fill(top, Long.MIN_VALUE);
    for (Map.Entry<InFlightRequest, Long> e : waiting.entrySet()) {
      long v = (now - e.getKey().prepared().arrivalNanos()) - (late ? e.getValue() : 0);
      if (v > top[0]) {
        int i = 0;
        while (i + 1 < k && top[i + 1] < v) {
          top[i] = top[i + 1];
          i++;
        }
        top[i] = v;
      }
    }
    return Math.max(0, top[0]);
  }

  // guarded by this
  private boolean expire(long now) {
    boolean any = false;
    while (!lags.isEmpty() && now - lags.peekFirst()[0] > LAG_WINDOW_NANOS) {
      lags.removeFirst();
      any = true;
    }
    return any;
  }

  // guarded by this
  private long quantile() {
    if (lags.isEmpty()) {
      return 0;
    }
    long[] v = new long[lags.size()];
    int i = 0;
    for (long[] s : lags) {
      v[i++] = s[1];
    }
    Arrays.sort(v);
    int k = (int) Math.ceil(LAG_QUANTILE * v.length) - 1;
    return Math.max(0, v[Math.max(0, Math.min(v.length - 1, k))]);
  }

  /** Requests whose first token has not come yet (bounded by the admission limits). */
  int waiting() {
    return waiting.size();
  }
}
