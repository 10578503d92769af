package dev.pdserve.core.experts;

import java.util.Collections;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.LongAccumulator;
import java.util.concurrent.atomic.LongAdder;

/**
 * What {@link RemoteExperts} has dispatched: per-call latency (count, sum, max, a fixed-bucket
 * histogram) and, per shard, requests, rows and tokens sent and failures. Lock-free counters, read
 * with the getters (a Prometheus exporter can poll them).
 */
public final class DispatchMetrics {
  /**
   * Upper bounds (inclusive, microseconds) of the latency buckets; a last bucket takes the rest.
   */
  public static final long[] LATENCY_BUCKETS_MICROS = {
    100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000
  };

  /**
   * One shard's traffic.
   *
   * @param requests Dispatch calls sent
   * @param rows hidden-state rows sent
   * @param tokens (row, slot) pairs its experts were asked to compute
   * @param failures calls that failed
   */
  public record ShardTraffic(long requests, long rows, long tokens, long failures) {}

  private static final class ShardCounters {
    final LongAdder requests = new LongAdder();
    final LongAdder rows = new LongAdder();
    final LongAdder tokens = new LongAdder();
    final LongAdder failures = new LongAdder();
  }

  private final LongAdder calls = new LongAdder();
  private final LongAdder failedCalls = new LongAdder();
  private final LongAdder latencyNanos = new LongAdder();
  private final LongAccumulator maxLatencyNanos = new LongAccumulator(Math::max, 0);
  private final AtomicLongArray histogram = new AtomicLongArray(LATENCY_BUCKETS_MICROS.length + 1);
  private final ConcurrentHashMap<String, ShardCounters> shards = new ConcurrentHashMap<>();

  void sent(String shard, int rows, int tokens) {
    ShardCounters c = shards.computeIfAbsent(shard, s -> new ShardCounters());
    c.requests.increment();
    c.rows.add(rows);
    c.tokens.add(tokens);
  }

  void shardFailed(String shard) {
    shards.computeIfAbsent(shard, s -> new ShardCounters()).failures.increment();
  }

  void call(long nanos, boolean ok) {
    calls.increment();
    if (!ok) {
      failedCalls.increment();
    }
    latencyNanos.add(nanos);
    maxLatencyNanos.accumulate(nanos);
    long micros = nanos / 1_000;
    int b = 0;
    while (b < LATENCY_BUCKETS_MICROS.length && micros > LATENCY_BUCKETS_MICROS[b]) {
      b++;
    }
    histogram.incrementAndGet(b);
  }

  /** {@code routed} calls that sent at least one request. */
  public long calls() {
    return calls.sum();
  }

  /** Calls that ended in an {@link ExpertDispatchException} after sending. */
  public long failedCalls() {
    return failedCalls.sum();
  }

  public double meanLatencyMicros() {
    long n = calls.sum();
    return n == 0 ? 0 : latencyNanos.sum() / 1e3 / n;
  }

  /** Latency of every call, summed. */
  public long totalLatencyNanos() {
    return latencyNanos.sum();
  }

  public double maxLatencyMicros() {
    return maxLatencyNanos.get() / 1e3;
  }

  /**
   * Calls per latency bucket: index i counts calls ≤ {@link #LATENCY_BUCKETS_MICROS}[i] (and above
   * the previous bound); the last counts the rest.
   */
  public long[] latencyHistogram() {
    long[] out = new long[histogram.length()];
    for (int i = 0; i < out.length; i++) {
      out[i] = histogram.get(i);
    }
    return out;
  }

  /** Traffic of one shard (zeros if nothing was sent to it). */
  public ShardTraffic shard(String shardId) {
    ShardCounters c = shards.get(shardId);
    return c == null
        ? new ShardTraffic(0, 0, 0, 0)
        : new ShardTraffic(c.requests.sum(), c.rows.sum(), c.tokens.sum(), c.failures.sum());
  }

  /** Traffic of every shard sent to so far, by shard id. */
  public Map<String, ShardTraffic> shards() {
    Map<String, ShardTraffic> out = new TreeMap<>();
    shards.keySet().forEach(id -> out.put(id, shard(id)));
    return Collections.unmodifiableMap(out);
  }
}
