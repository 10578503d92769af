package dev.pdserve.core.metrics;

import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.arrow.memory.BufferAllocator;

/**
 * A node's off-heap Arrow memory as gauges read at scrape time: {@value
 * MetricNames#ARROW_ALLOCATED_BYTES} (bytes held now) and {@value MetricNames#ARROW_PEAK_BYTES}
 * (the most ever held at once), one series per allocator, labelled {@value MetricNames#ALLOCATOR}
 * with its Arrow name: the node's own allocator (a worker's {@code worker-<node id>}) and each of
 * its direct children ({@code kv-pool}, {@code kv-transfer-server}, {@code kv-transfer-client}).
 *
 * <p>A child's figures include its own children's (Arrow accounts every allocation up the tree), so
 * the node's own series is the node's total, and deeper allocators (Flight's per-connection ones)
 * are counted in the child above them without a series each: the label set stays fixed however many
 * connections come and go. Children of the same name (none today) are summed (peaks: the largest).
 * Reading takes no lock on any hot path: the accountant's counters and a copy of the child set.
 */
public final class ArrowMemoryMetrics {
  private ArrowMemoryMetrics() {}

  /** Registers both gauges for {@code allocator} and its direct children in {@code metrics}. */
  public static void register(NodeMetrics metrics, BufferAllocator allocator) {
    GaugeWithCallback.builder()
        .name(MetricNames.ARROW_ALLOCATED_BYTES)
        .help(
            "Off-heap bytes held now by this node's Arrow allocator and each of its children"
                + " (a child's figure includes its own children; the node's own allocator is the"
                + " total).")
        .labelNames(MetricNames.ALLOCATOR)
        .callback(cb -> read(allocator).forEach((name, v) -> cb.call(v[0], name)))
        .register(metrics.registry());
    GaugeWithCallback.builder()
        .name(MetricNames.ARROW_PEAK_BYTES)
        .help(
            "Most off-heap bytes this node's Arrow allocator and each of its children ever held"
                + " at once.")
        .labelNames(MetricNames.ALLOCATOR)
        .callback(cb -> read(allocator).forEach((name, v) -> cb.call(v[1], name)))
        .register(metrics.registry());
  }

  /**
   * Allocated and peak bytes by allocator name: {@code allocator} first, then its direct children
   * in name order.
   */
  static Map<String, long[]> read(BufferAllocator allocator) {
    Map<String, long[]> out = new LinkedHashMap<>();
    out.put(
        allocator.getName(),
        new long[] {allocator.getAllocatedMemory(), allocator.getPeakMemoryAllocation()});
    List<BufferAllocator> children = new ArrayList<>(allocator.getChildAllocators());
    children.sort((a, b) -> a.getName().compareTo(b.getName()));
    for (BufferAllocator c : children) {
      long[] v = out.computeIfAbsent(c.getName(), k -> new long[2]);
      v[0] += c.getAllocatedMemory();
      v[1] = Math.max(v[1], c.getPeakMemoryAllocation());
    }
    return out;
  }
}
