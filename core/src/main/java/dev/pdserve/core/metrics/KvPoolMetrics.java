package dev.pdserve.core.metrics;

import dev.pdserve.core.kv.KvBlockPool;

/** A worker's KV pool as gauges, read at scrape time. */
public final class KvPoolMetrics {
  private KvPoolMetrics() {}

  /**
   * Registers {@value MetricNames#KV_CACHE_USAGE} (used blocks / all blocks, 0..1 — "1 means 100
   * percent", as vLLM defines it) and {@value MetricNames#KV_BLOCKS_TOTAL}.
   */
  public static void register(NodeMetrics metrics, KvBlockPool pool) {
    metrics.gauge(
        MetricNames.KV_CACHE_USAGE,
        "KV-cache usage of this worker's paged pool: used blocks / all blocks (1 means 100 percent).",
        () -> pool.totalBlocks() == 0 ? 0 : (double) pool.usedBlocks() / pool.totalBlocks());
    metrics.gauge(
        MetricNames.KV_BLOCKS_TOTAL,
        "KV blocks in this worker's pool (a fixed budget).",
        pool::totalBlocks);
  }
}
