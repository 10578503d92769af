package dev.pdserve.expert.metrics;

import dev.pdserve.core.metrics.MetricBuckets;
import dev.pdserve.core.metrics.MetricNames;
import dev.pdserve.core.metrics.NodeMetrics;
import dev.pdserve.expert.ExpertShard;
import dev.pdserve.expert.ExpertShardMetrics;
import dev.pdserve.expert.ExpertShardStats;
import dev.pdserve.model.config.ModelConfig;
import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;

/**
 * An expert shard's metrics: compute time per dispatch ({@value MetricNames#EXPERT_COMPUTE_TIME}),
 * rejected dispatches, and tokens per expert ({@value MetricNames#EXPERT_TOKENS}, labels {@code
 * layer}, {@code group}, {@code expert}) — the load figures a rebalancer and a heat-map dashboard
 * need. The per-expert counts are read from {@link ExpertShardStats} at scrape time (the dispatch
 * path only bumps an array slot).
 *
 * <p>Cardinality: one series per hosted (MoE layer, group, expert): the {@code tiny} preset has 3
 * MoE layers × 2 groups × 64 experts = 384 series over all shards; ERNIE-4.5-VL-28B-A3B has 27 × 2
 * × 64 = 3,456. Every hosted expert is exposed, at 0 until it gets tokens, so rates are defined
 * from the start.
 */
public final class PrometheusShardMetrics implements ExpertShardMetrics {
  private final NodeMetrics metrics;
  private final Histogram computeTime;

  public PrometheusShardMetrics(NodeMetrics metrics) {
    this.metrics = metrics;
    computeTime =
        metrics.histogram(
            MetricNames.EXPERT_COMPUTE_TIME,
            "Time this shard took to compute one dispatch (one MoE layer of one caller's step).",
            MetricBuckets.SHORT_DURATION);
  }

  /** Registers the counters read from the shard's statistics. */
  public PrometheusShardMetrics bind(ExpertShard shard) {
    ExpertShardStats stats = shard.stats();
    ModelConfig cfg = shard.model();
    CounterWithCallback.builder()
        .name(MetricNames.EXPERT_TOKENS)
        .help(
            "Tokens routed to each expert hosted on this shard ((token, slot) pairs computed), by MoE layer, expert group and expert index.")
        .labelNames(MetricNames.LAYER, MetricNames.GROUP, MetricNames.EXPERT)
        .callback(
            cb -> {
              for (int layer = 0; layer < cfg.numLayers(); layer++) {
                String l = Integer.toString(layer);
                for (int group : cfg.groupsInLayer(layer)) {
                  String g = cfg.expertGroups().get(group).name();
                  for (int e = shard.range().first(); e <= shard.range().last(); e++) {
                    if (shard.hosts(layer, group, e)) {
                      cb.call(stats.tokens(layer, group, e), l, g, Integer.toString(e));
                    }
                  }
                }
              }
            })
        .register(metrics.registry());
    metrics.counter(
        MetricNames.EXPERT_DISPATCHES_REJECTED,
        "Dispatches this shard refused (invalid, or naming an expert it does not host).",
        stats::rejectedDispatches);
    return this;
  }

  @Override
  public void computed(int rows, int tokens, long nanos) {
    computeTime.observe(nanos / 1e9);
  }
}
