package dev.pdserve.expert;

/**
 * What an expert shard measures per dispatch, beyond the counts {@link ExpertShardStats} keeps; the
 * wiring implements it over Prometheus ({@link dev.pdserve.expert.metrics.PrometheusShardMetrics}).
 * Called on dispatch threads: cheap, never blocking.
 */
public interface ExpertShardMetrics {
  /** Measures nothing. */
  ExpertShardMetrics NONE = new ExpertShardMetrics() {};

  /**
   * A dispatch was computed.
   *
   * @param rows hidden-state rows received
   * @param tokens (row, slot) pairs computed here
   * @param nanos compute time
   */
  default void computed(int rows, int tokens, long nanos) {}
}
