package dev.pdserve.core.metrics;

import dev.pdserve.core.experts.DispatchMetrics;
import io.prometheus.metrics.model.registry.Collector;
import io.prometheus.metrics.model.snapshots.ClassicHistogramBuckets;
import io.prometheus.metrics.model.snapshots.HistogramSnapshot;
import io.prometheus.metrics.model.snapshots.MetricSnapshot;

/**
 * A worker's expert dispatch ({@link dev.pdserve.core.experts.RemoteExperts}) as Prometheus
 * metrics, exported from the lock-free counts {@link DispatchMetrics} already keeps (nothing more
 * is done per call): {@value MetricNames#EXPERT_DISPATCH_TIME}, the latency of one MoE layer's
 * dispatch (every shard answered), in {@link DispatchMetrics#LATENCY_BUCKETS_MICROS}; and {@value
 * MetricNames#EXPERT_DISPATCH_FAILURES}.
 */
public final class RemoteExpertsMetrics {
  private RemoteExpertsMetrics() {}

  public static void register(NodeMetrics metrics, DispatchMetrics dispatch) {
    double[] bounds = new double[DispatchMetrics.LATENCY_BUCKETS_MICROS.length + 1];
    for (int i = 0; i < DispatchMetrics.LATENCY_BUCKETS_MICROS.length; i++) {
      bounds[i] = DispatchMetrics.LATENCY_BUCKETS_MICROS[i] / 1e6;
    }
    bounds[bounds.length - 1] = Double.POSITIVE_INFINITY;
    metrics.register(
        new Collector() {
          @Override
          public MetricSnapshot collect() {
            long[] counts = dispatch.latencyHistogram();
            return HistogramSnapshot.builder()
                .name(MetricNames.EXPERT_DISPATCH_TIME)
                .help(
                    "Latency of one MoE layer's routed-expert dispatch from this worker: request to every shard until all answered.")
                .dataPoint(
                    HistogramSnapshot.HistogramDataPointSnapshot.builder()
                        .classicHistogramBuckets(ClassicHistogramBuckets.of(bounds, counts))
                        .sum(dispatch.totalLatencyNanos() / 1e9)
                        .build())
                .build();
          }

          @Override
          public String getPrometheusName() {
            return MetricNames.EXPERT_DISPATCH_TIME;
          }
        });
    metrics.counter(
        MetricNames.EXPERT_DISPATCH_FAILURES,
        "MoE layer dispatches from this worker that failed (a shard erred or timed out).",
        dispatch::failedCalls);
  }
}
