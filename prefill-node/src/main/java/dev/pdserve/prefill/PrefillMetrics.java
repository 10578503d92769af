package dev.pdserve.prefill;

import dev.pdserve.model.engine.ImagePromptEncoder;

/**
 * What the prefill engine measures, as events; the wiring implements it over Prometheus ({@code
 * PrometheusPrefillMetrics} in the metrics package). Called from the prefill loop and the
 * acknowledgement threads: implementations must be cheap and must not block. Durations are
 * nanoseconds. Its images' encoding reports through the {@link ImagePromptEncoder.Observer} events
 * ({@code prefill-vision} thread).
 */
public interface PrefillMetrics extends ImagePromptEncoder.Observer {
  /** Measures nothing. */
  PrefillMetrics NONE = new PrefillMetrics() {};

  /**
   * One forward step computed.
   *
   * @param prompts prompts (or chunks of them) in the step
   * @param tokens prompt tokens computed
   */
  default void step(int prompts, int tokens, long nanos) {}

  /**
   * A request's KV is held by its decode node.
   *
   * @param bytes KV bytes sent
   * @param firstLayerToAckNanos from the first layer sent to the decode node's acknowledgement of
   *     the last
   */
  default void kvSent(long bytes, long firstLayerToAckNanos) {}

  /**
   * A prompt was looked up in the prefix cache (for the prefix cache to call).
   *
   * @param queriedTokens prompt tokens looked up
   * @param hitTokens of those, tokens whose KV the cache already held
   */
  default void prefixCacheQueried(int queriedTokens, int hitTokens) {}

  /** {@code tokens} prompt tokens of a step were image tokens (routed to the vision experts). */
  default void visionTokens(int tokens) {}
}
