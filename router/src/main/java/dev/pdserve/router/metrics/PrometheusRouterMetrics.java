package dev.pdserve.router.metrics;

import dev.pdserve.core.metrics.MetricBuckets;
import dev.pdserve.core.metrics.MetricNames;
import dev.pdserve.core.metrics.NodeMetrics;
import dev.pdserve.router.Router;
import dev.pdserve.router.RouterMetrics;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.Histogram;
import java.util.List;

/**
 * {@link RouterMetrics} over Prometheus: vLLM's request-level metrics, measured per request at the
 * router (so they are end to end across prefill, KV transfer and decode nodes), and the outcomes of
 * requests that ended without a completion ({@value MetricNames#REQUEST_REJECTIONS}, by reason).
 * Each event is one histogram observation or counter increment.
 */
public final class PrometheusRouterMetrics implements RouterMetrics {
  /** Finish reasons and rejection reasons exposed (at 0) before the first request. */
  private static final List<String> FINISH_REASONS = List.of("stop", "length", "abort");

  private static final List<String> KNOWN_REJECTIONS =
      List.of(
          REJECT_INVALID_ARGUMENT,
          "not_found",
          "already_exists",
          REJECT_QUEUE_FULL,
          REJECT_NO_PREFILL_NODE,
          REJECT_NO_DECODE_NODE,
          REJECT_KV_EXHAUSTED,
          REJECT_DEADLINE,
          REJECT_CANCELLED,
          "unavailable",
          REJECT_SHUTTING_DOWN,
          REJECT_OVERLOADED,
          REJECT_MIGRATION_LIMIT,
          REJECT_MIGRATION_FAILED,
          REJECT_INTERNAL);

  private static final List<String> MIGRATION_REASONS =
      List.of(
          MIGRATION_DECODE_NODE_LOST,
          MIGRATION_DECODE_NODE_SILENT,
          MIGRATION_DECODE_STATE_LOST,
          MIGRATION_PREFILL_NODE_LOST,
          MIGRATION_DRAIN);

  private final NodeMetrics metrics;
  private final Histogram ttft;
  private final Histogram itl;
  private final Histogram e2e;
  private final Histogram queue;
  private final Histogram prefill;
  private final Histogram decode;
  private final Counter promptTokens;
  private final Counter generationTokens;
  private final Counter success;
  private final Counter rejections;
  private final Counter migrations;

  public PrometheusRouterMetrics(NodeMetrics metrics) {
    this.metrics = metrics;
    ttft =
        metrics.histogram(
            MetricNames.TIME_TO_FIRST_TOKEN,
            "Histogram of time to first token in seconds (arrival at the router to the first token back).",
            MetricBuckets.TIME_TO_FIRST_TOKEN);
    itl =
        metrics.histogram(
            MetricNames.INTER_TOKEN_LATENCY,
            "Histogram of inter-token latency in seconds (between deltas of a request at the router).",
            MetricBuckets.INTER_TOKEN);
    e2e =
        metrics.histogram(
            MetricNames.E2E_REQUEST_LATENCY,
            "Histogram of e2e request latency in seconds (arrival at the router to completion).",
            MetricBuckets.REQUEST_LATENCY);
    queue =
        metrics.histogram(
            MetricNames.REQUEST_QUEUE_TIME,
            "Histogram of time spent in WAITING phase for request (the router's admission queue).",
            MetricBuckets.REQUEST_LATENCY);
    prefill =
        metrics.histogram(
            MetricNames.REQUEST_PREFILL_TIME,
            "Histogram of time spent in PREFILL phase for request (KV reservation, prefill, KV transfer, until the first token).",
            MetricBuckets.REQUEST_LATENCY);
    decode =
        metrics.histogram(
            MetricNames.REQUEST_DECODE_TIME,
            "Histogram of time spent in DECODE phase for request (first token to last token).",
            MetricBuckets.REQUEST_LATENCY);
    promptTokens =
        metrics.counter(
            MetricNames.PROMPT_TOKENS,
            "Number of prefill tokens processed (prompts of requests that reached their first token).");
    generationTokens =
        metrics.counter(
            MetricNames.GENERATION_TOKENS,
            "Number of generation tokens processed (streamed to clients through this router).");
    success =
        metrics.counter(
            MetricNames.REQUEST_SUCCESS,
            "Count of successfully processed requests.",
            MetricNames.FINISHED_REASON);
    rejections =
        metrics.counter(
            MetricNames.REQUEST_REJECTIONS,
            "Requests that ended with an error instead of a completion, by reason: refused at admission (invalid_argument, not_found, "
                + "already_exists, queue_full, overloaded, no_prefill_node, no_decode_node, shutting_down), no KV on any decode node "
                + "(kv_exhausted), deadline, cancelled by the client, lost their decode node past the migration limit (migration_limit) "
                + "or with no node to continue on (migration_failed), or failed (unavailable, internal, ...).",
            MetricNames.REASON);
    migrations =
        metrics.counter(
            MetricNames.REQUEST_MIGRATIONS,
            "Requests continued on another node, by reason: their decode node's stream broke (decode_node_lost) or went silent "
                + "(decode_node_silent) or no longer held their reservation (decode_state_lost) and they resumed elsewhere from the tokens sent, their prefill node failed and the KV was "
                + "computed again (prefill_node_lost), or a draining decode node moved them (drain).",
            MetricNames.REASON);
    FINISH_REASONS.forEach(r -> success.labelValues(r));
    KNOWN_REJECTIONS.forEach(r -> rejections.labelValues(r));
    MIGRATION_REASONS.forEach(r -> migrations.labelValues(r));
  }

  /**
   * Registers the router's {@code num_requests_running} / {@code num_requests_waiting} gauges (read
   * at scrape time).
   */
  public PrometheusRouterMetrics bind(Router router) {
    metrics.gauge(
        MetricNames.NUM_REQUESTS_RUNNING,
        "Number of requests the router is working on (reserving KV, prefilling or decoding).",
        router::running);
    metrics.gauge(
        MetricNames.NUM_REQUESTS_WAITING,
        "Number of requests waiting in the router's admission queue.",
        router::queued);
    metrics.gauge(
        MetricNames.ROUTER_FORECAST_QUEUE_DELAY,
        "The overload forecast's wait for the prompt tokens ahead of a request arriving now.",
        () -> router.predictedQueueDelay().toNanos() / 1e9);
    metrics.gauge(
        MetricNames.ROUTER_FORECAST_LAG,
        "How much later than forecast recent first tokens came (the quantile the overload guard adds"
            + " to the queue forecast).",
        () -> router.forecastLag().toNanos() / 1e9);
    metrics.gauge(
        MetricNames.ROUTER_FORECAST_PREFILL_RATE,
        "The prompt throughput the overload forecast uses (measured from first tokens, or assumed).",
        router::forecastTokensPerSecond);
    metrics.gauge(
        MetricNames.ROUTER_ADMISSION_WINDOW,
        "How many requests the overload guard lets wait for their first token at once (a window"
            + " widened by first tokens within 60 % of pdserve.router.max-queue-delay, narrowed by"
            + " later ones); 0 without a bound.",
        router::admissionWindow);
    return this;
  }

  @Override
  public void firstToken(long ttftNanos, int promptTokens, int tokens) {
    ttft.observe(seconds(ttftNanos));
    this.promptTokens.inc(promptTokens);
    generationTokens.inc(tokens);
  }

  @Override
  public void nextTokens(long interTokenNanos, int tokens) {
    itl.observe(seconds(interTokenNanos));
    generationTokens.inc(tokens);
  }

  @Override
  public void finished(
      String finishReason, long queueNanos, long prefillNanos, long decodeNanos, long e2eNanos) {
    success.labelValues(finishReason).inc();
    queue.observe(seconds(queueNanos));
    if (prefillNanos >= 0) {
      prefill.observe(seconds(prefillNanos));
    }
    if (decodeNanos >= 0) {
      decode.observe(seconds(decodeNanos));
    }
    e2e.observe(seconds(e2eNanos));
  }

  @Override
  public void rejected(String reason) {
    rejections.labelValues(reason).inc();
  }

  @Override
  public void migrated(String reason) {
    migrations.labelValues(reason).inc();
  }

  private static double seconds(long nanos) {
    return Math.max(0, nanos) / 1e9;
  }
}
