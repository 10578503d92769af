package dev.pdserve.router;

import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.serving.ServingException;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Refuses, at admission, requests that could not get their first token within {@link
 * OverloadLimits#maxQueueDelay()}, so the requests admitted keep their latency.
 *
 * <p>The forecast: the prompt tokens ahead of a new request — those of every request this router
 * took whose first token has not come yet (queued here, reserving, prefilling), plus what the
 * ACTIVE prefill nodes report queued beyond what this router sent them (other routers' work) — over
 * the throughput the router measured. A request's own prompt is not part of its queueing delay: a
 * long prompt on an idle cluster is served, not refused forever.
 *
 * <p>The throughput is measured from first tokens: when a request's first token arrives and the
 * request was already waiting when the previous first token arrived, the router was busy for the
 * whole gap, so its prompt tokens over the gap are a sample of how fast the backlog drains (the
 * gaps of parallel prefill nodes interleave, so the samples add up to the cluster's rate). Tokens
 * and gaps are smoothed separately (exponentially, weight {@value #SMOOTHING} per sample) and the
 * rate is their quotient. A request that arrived to an idle router measures latency, not
 * throughput, and is not a sample. Until the first sample the rate is {@link
 * OverloadLimits#prefillTokensPerSecond()} per ACTIVE prefill node. Times are the router's ticker
 * readings.
 *
 * <p>Memory: the set of requests awaiting their first token is bounded by the router's admission
 * limits; a refused request leaves nothing behind.
 */
final class OverloadGuard {
  static final double SMOOTHING = 0.1;

  private final OverloadLimits limits;
  private final ClusterView nodes;
  private final NodeSelector selector;
  private final Set<InFlightRequest> waiting = ConcurrentHashMap.newKeySet();
  private final AtomicLong waitingTokens = new AtomicLong();

  // guarded by this
  private boolean anyFirstToken;
  private long lastFirstTokenNanos;
  private boolean measured;
  private double smoothedTokens;
  private double smoothedNanos;

  /** The forecast for a request arriving now. */
  record Forecast(long tokensAhead, double tokensPerSecond, boolean measured) {
    /** The predicted wait for the prompts ahead. */
    Duration delay() {
      return Duration.ofNanos((long) Math.ceil(tokensAhead * 1e9 / tokensPerSecond));
    }
  }

  OverloadGuard(OverloadLimits limits, ClusterView nodes, NodeSelector selector) {
    this.limits = limits;
    this.nodes = nodes;
    this.selector = selector;
  }

  /**
   * Refuses a request whose predicted queueing delay exceeds the bound.
   *
   * @throws ServingException RESOURCE_EXHAUSTED saying the prediction, the bound and when to retry
   */
  void check() {
    Duration bound = limits.maxQueueDelay();
    if (bound.isZero()) {
      return;
    }
    Forecast f = forecast();
    Duration delay = f.delay();
    if (f.tokensAhead() == 0 || delay.compareTo(bound) <= 0) {
      return;
    }
    long retryMillis = Math.max(1, delay.minus(bound).toMillis());
    throw ServingException.exhausted(
        String.format(
            Locale.ROOT,
            "router overloaded: a new request would wait about %.1f s for the %d prompt tokens"
                + " ahead of it (at %.0f prompt tokens/s, %s), more than the %.1f s allowed"
                + " (pdserve.router.max-queue-delay); retry after %d ms",
            delay.toMillis() / 1000.0,
            f.tokensAhead(),
            f.tokensPerSecond(),
            f.measured() ? "as measured" : "assumed until measured",
            bound.toMillis() / 1000.0,
            retryMillis));
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
      if (measured && smoothedNanos > 0) {
        return new Forecast(ahead, smoothedTokens * 1e9 / smoothedNanos, true);
      }
    }
    return new Forecast(
        ahead, limits.prefillTokensPerSecond() * Math.max(1, prefill.size()), false);
  }

  /** {@code f} was taken: its prompt is ahead of later requests until its first token. */
  void admitted(InFlightRequest f) {
    if (waiting.add(f)) {
      waitingTokens.addAndGet(f.prompt().length);
    }
  }

  /** {@code f}'s first token reached the router at {@code now}: a throughput sample, maybe. */
  void firstToken(InFlightRequest f, long now) {
    if (!leave(f)) {
      return;
    }
    int tokens = f.prompt().length;
    synchronized (this) {
      if (anyFirstToken && f.prepared().arrivalNanos() - lastFirstTokenNanos <= 0) {
        long gap = Math.max(0, now - lastFirstTokenNanos);
        if (!measured) {
          smoothedTokens = tokens;
          smoothedNanos = gap;
          measured = true;
        } else {
          smoothedTokens += SMOOTHING * (tokens - smoothedTokens);
          smoothedNanos += SMOOTHING * (gap - smoothedNanos);
        }
      }
      if (!anyFirstToken || now - lastFirstTokenNanos > 0) {
        lastFirstTokenNanos = now;
      }
      anyFirstToken = true;
    }
  }

  /** {@code f} ended (with or without a first token): it is no longer ahead of anyone. */
  void ended(InFlightRequest f) {
    leave(f);
  }

  private boolean leave(InFlightRequest f) {
    if (!waiting.remove(f)) {
      return false;
    }
    waitingTokens.addAndGet(-f.prompt().length);
    return true;
  }

  /** Requests whose first token has not come yet (bounded by the admission limits). */
  int waiting() {
    return waiting.size();
  }
}
