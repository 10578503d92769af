package dev.pdserve.decode;

import dev.pdserve.model.engine.ImagePromptEncoder;

/**
 * What the decode engine measures, as events; the wiring implements it over Prometheus ({@link
 * dev.pdserve.decode.metrics.PrometheusDecodeMetrics}). Called from the decode loop and from
 * transfer completion: implementations must be cheap and must not block. Durations are nanoseconds.
 */
public interface DecodeMetrics extends ImagePromptEncoder.Observer {
  /** Measures nothing. */
  DecodeMetrics NONE = new DecodeMetrics() {};

  /**
   * A joined request's KV has fully arrived.
   *
   * @param bytes KV bytes received
   * @param receiveNanos from the first row stored to the last
   */
  default void kvReceived(long bytes, long receiveNanos) {}

  /** A request's first token (sampled by the prefill node) was emitted here. */
  default void firstToken() {}

  /** One decode step: {@code batchSize} sequences, one token each. */
  default void step(int batchSize, long nanos) {}

  /** A sequence finished here ({@code stop}, {@code length} or {@code abort}). */
  default void finished(String finishReason) {}

  /** {@code tokens} tokens of a local prefill were image tokens (routed to the vision experts). */
  default void visionTokens(int tokens) {}
}
