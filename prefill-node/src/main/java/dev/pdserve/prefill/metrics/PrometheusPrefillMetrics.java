package dev.pdserve.prefill.metrics;

import dev.pdserve.core.metrics.MetricBuckets;
import dev.pdserve.core.metrics.MetricNames;
import dev.pdserve.core.metrics.NodeMetrics;
import dev.pdserve.prefill.PrefillMetrics;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.Histogram;

/**
 * {@link PrefillMetrics} over Prometheus: prompt tokens computed, step time and size, and per
 * request the KV bytes pushed to the decode node and the time from the first layer sent to the
 * decode node's acknowledgement. Also the prefix cache counters vLLM exposes, counted through
 * {@link #prefixCacheQueried} (at 0 until a prefix cache calls it). With a vision model: the vision
 * encoder's time per image, images encoded, encoder-cache hits, and prompt tokens computed as image
 * tokens (those the vision expert group takes).
 */
public final class PrometheusPrefillMetrics implements PrefillMetrics {
  private final Counter promptTokens;
  private final Histogram stepTime;
  private final Histogram stepTokens;
  private final Histogram sentBytes;
  private final Histogram sendTime;
  private final Counter prefixQueries;
  private final Counter prefixHits;
  private final Histogram encoderTime;
  private final Counter imagesEncoded;
  private final Counter encoderCacheHits;
  private final Counter visionTokens;

  public PrometheusPrefillMetrics(NodeMetrics metrics) {
    promptTokens =
        metrics.counter(
            MetricNames.PROMPT_TOKENS,
            "Number of prefill tokens processed (prompt tokens computed on this worker).");
    stepTime =
        metrics.histogram(
            MetricNames.PREFILL_STEP_TIME,
            "Time of one prefill forward step (every prompt chunk in the step).",
            MetricBuckets.SHORT_DURATION);
    stepTokens =
        metrics.histogram(
            MetricNames.PREFILL_STEP_TOKENS,
            "Prompt tokens computed in one prefill step.",
            MetricBuckets.STEP_TOKENS);
    sentBytes =
        metrics.histogram(
            MetricNames.KV_TRANSFER_SENT_BYTES,
            "KV bytes one request's prefill pushed to its decode node over Arrow Flight.",
            MetricBuckets.KV_BYTES);
    sendTime =
        metrics.histogram(
            MetricNames.KV_TRANSFER_SEND_TIME,
            "Per request, time from the first KV layer sent to the decode node's acknowledgement that it holds every layer.",
            MetricBuckets.SHORT_DURATION);
    prefixQueries =
        metrics.counter(
            MetricNames.PREFIX_CACHE_QUERIES,
            "Prefix cache queries, in terms of number of queried tokens.");
    prefixHits =
        metrics.counter(
            MetricNames.PREFIX_CACHE_HITS,
            "Prefix cache hits, in terms of number of cached tokens.");
    encoderTime =
        metrics.histogram(
            MetricNames.PREFILL_VISION_ENCODER_TIME,
            "Time the vision encoder (ViT and resampler) took for one image of a prompt prefilled here.",
            MetricBuckets.SHORT_DURATION);
    imagesEncoded =
        metrics.counter(
            MetricNames.PREFILL_VISION_IMAGES_ENCODED,
            "Images of prompts prefilled here that went through the vision encoder.");
    encoderCacheHits =
        metrics.counter(
            MetricNames.PREFILL_VISION_ENCODER_CACHE_HITS,
            "Images of prompts prefilled here whose encoding came from the encoder cache.");
    visionTokens =
        metrics.counter(
            MetricNames.PREFILL_VISION_TOKENS,
            "Prompt tokens computed here as image tokens (routed to the vision expert group).");
  }

  @Override
  public void step(int prompts, int tokens, long nanos) {
    stepTime.observe(nanos / 1e9);
    stepTokens.observe(tokens);
    promptTokens.inc(tokens);
  }

  /**
   * Counts one prefix cache lookup: {@code queriedTokens} prompt tokens looked up, {@code
   * hitTokens} of them found ({@code vllm:prefix_cache_queries} / {@code vllm:prefix_cache_hits},
   * in tokens as vLLM counts them).
   */
  @Override
  public void prefixCacheQueried(int queriedTokens, int hitTokens) {
    if (queriedTokens < 0 || hitTokens < 0 || hitTokens > queriedTokens) {
      throw new IllegalArgumentException(
          "prefix cache lookup of " + queriedTokens + " tokens cannot hit " + hitTokens);
    }
    prefixQueries.inc(queriedTokens);
    prefixHits.inc(hitTokens);
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
  public void kvSent(long bytes, long firstLayerToAckNanos) {
    sentBytes.observe(bytes);
    sendTime.observe(firstLayerToAckNanos / 1e9);
  }
}
