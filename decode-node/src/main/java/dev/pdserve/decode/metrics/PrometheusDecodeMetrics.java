package dev.pdserve.decode.metrics;

import dev.pdserve.core.metrics.MetricBuckets;
import dev.pdserve.core.metrics.MetricNames;
import dev.pdserve.core.metrics.NodeMetrics;
import dev.pdserve.decode.DecodeEngine;
import dev.pdserve.decode.DecodeMetrics;
import io.prometheus.metrics.core.datapoints.CounterDataPoint;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.Histogram;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;

/**
 * {@link DecodeMetrics} over Prometheus: tokens generated and sequences finished on this worker
 * (vLLM's names), decode step time and batch size, per request the KV bytes received and the time
 * they took to arrive, and (with {@link #bind}) the KV blocks reservations hold. With a vision
 * model, for prompts prefilled here: the vision encoder's time per image, images encoded,
 * encoder-cache hits, and image tokens computed (those the vision expert group takes).
 */
public final class PrometheusDecodeMetrics implements DecodeMetrics {
  private static final List<String> FINISH_REASONS = List.of("stop", "length", "abort");

  private final NodeMetrics metrics;
  private final Counter generationTokens;
  private final Counter success;
  private final Map<String, CounterDataPoint> successByReason;
  private final Histogram stepTime;
  private final Histogram batchSize;
  private final Histogram receivedBytes;
  private final Histogram receiveTime;
  private final Histogram encoderTime;
  private final Counter imagesEncoded;
  private final Counter encoderCacheHits;
  private final Counter visionTokens;

  public PrometheusDecodeMetrics(NodeMetrics metrics) {
    this.metrics = metrics;
    generationTokens =
        metrics.counter(
            MetricNames.GENERATION_TOKENS,
            "Number of generation tokens processed (emitted by this worker's decode role).");
    success =
        metrics.counter(
            MetricNames.REQUEST_SUCCESS,
            "Count of successfully processed requests (sequences that finished decoding on this worker).",
            MetricNames.FINISHED_REASON);
    successByReason =
        FINISH_REASONS.stream()
            .collect(
                Collectors.toUnmodifiableMap(Function.identity(), r -> success.labelValues(r)));
    stepTime =
        metrics.histogram(
            MetricNames.DECODE_STEP_TIME,
            "Time of one decode step (a forward pass over the running batch, sampling included).",
            MetricBuckets.SHORT_DURATION);
    batchSize =
        metrics.histogram(
            MetricNames.DECODE_BATCH_SIZE,
            "Sequences in one decode step.",
            MetricBuckets.BATCH_SIZE);
    receivedBytes =
        metrics.histogram(
            MetricNames.KV_TRANSFER_RECEIVED_BYTES,
            "KV bytes one request's decode node received from its prefill node.",
            MetricBuckets.KV_BYTES);
    receiveTime =
        metrics.histogram(
            MetricNames.KV_TRANSFER_RECEIVE_TIME,
            "Per request, time from the first KV row received to the last.",
            MetricBuckets.SHORT_DURATION);
    encoderTime =
        metrics.histogram(
            MetricNames.DECODE_VISION_ENCODER_TIME,
            "Time the vision encoder (ViT and resampler) took for one image of a prompt this decode node prefilled itself.",
            MetricBuckets.SHORT_DURATION);
    imagesEncoded =
        metrics.counter(
            MetricNames.DECODE_VISION_IMAGES_ENCODED,
            "Images of prompts this decode node prefilled itself that went through the vision encoder.");
    encoderCacheHits =
        metrics.counter(
            MetricNames.DECODE_VISION_ENCODER_CACHE_HITS,
            "Images of prompts this decode node prefilled itself whose encoding came from the encoder cache.");
    visionTokens =
        metrics.counter(
            MetricNames.DECODE_VISION_TOKENS,
            "Prompt tokens this decode node prefilled itself as image tokens (routed to the vision expert group).");
  }

  /** Registers {@value MetricNames#KV_RESERVED_BLOCKS}, read from the engine at scrape time. */
  public PrometheusDecodeMetrics bind(DecodeEngine engine) {
    metrics.gauge(
        MetricNames.KV_RESERVED_BLOCKS,
        "KV blocks held by decode reservations (reserved, waiting for their KV, or running).",
        engine::reservedBlocks);
    return this;
  }

  @Override
  public void kvReceived(long bytes, long receiveNanos) {
    receivedBytes.observe(bytes);
    receiveTime.observe(receiveNanos / 1e9);
  }

  @Override
  public void firstToken() {
    generationTokens.inc();
  }

  @Override
  public void step(int batch, long nanos) {
    stepTime.observe(nanos / 1e9);
    batchSize.observe(batch);
    generationTokens.inc(batch);
  }

  @Override
  public void imageEncoded(long nanos) {
    encoderTime.observe(nanos / 1e9);
    imagesEncoded.inc();
  }

  @Override
  public void encoderCacheHit() {
    encoderCacheHits.inc();
  }

  @Override
  public void visionTokens(int tokens) {
    visionTokens.inc(tokens);
  }

  @Override
  public void finished(String finishReason) {
    CounterDataPoint c = successByReason.get(finishReason);
    (c != null ? c : success.labelValues(finishReason)).inc();
  }
}
