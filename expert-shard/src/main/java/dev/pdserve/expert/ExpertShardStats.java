package dev.pdserve.expert;

import dev.pdserve.model.config.ModelConfig;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.LongAdder;

/**
 * What an expert shard has computed: dispatches, rows, tokens ((row, slot) pairs), experts run,
 * compute time, rejected dispatches, and tokens per (layer, group, expert) — the load figures a
 * rebalancer needs. Lock-free counters.
 */
public final class ExpertShardStats {
  private final ModelConfig cfg;
  private final int groups;
  private final int maxExperts;
  private final AtomicLongArray perExpert;
  private final LongAdder dispatches = new LongAdder();
  private final LongAdder rows = new LongAdder();
  private final LongAdder tokens = new LongAdder();
  private final LongAdder expertsRun = new LongAdder();
  private final LongAdder computeNanos = new LongAdder();
  private final LongAdder rejected = new LongAdder();

  ExpertShardStats(ModelConfig cfg) {
    this.cfg = cfg;
    this.groups = Math.max(1, cfg.expertGroups().size());
    this.maxExperts = cfg.expertGroups().stream().mapToInt(g -> g.numExperts()).max().orElse(1);
    this.perExpert = new AtomicLongArray(cfg.numLayers() * groups * maxExperts);
  }

  void tokenFor(int layer, int group, int expert) {
    perExpert.incrementAndGet((layer * groups + group) * maxExperts + expert);
  }

  void dispatched(int rowCount, int tokenCount, int experts, long nanos) {
    dispatches.increment();
    rows.add(rowCount);
    tokens.add(tokenCount);
    expertsRun.add(experts);
    computeNanos.add(nanos);
  }

  void rejected() {
    rejected.increment();
  }

  /** Dispatches computed. */
  public long dispatches() {
    return dispatches.sum();
  }

  /** Hidden-state rows received in computed dispatches. */
  public long rows() {
    return rows.sum();
  }

  /** (row, slot) pairs computed, i.e. tokens through experts. */
  public long tokens() {
    return tokens.sum();
  }

  /** Expert runs (one per distinct expert per dispatch). */
  public long expertsRun() {
    return expertsRun.sum();
  }

  /** Dispatches refused (invalid, or an expert not hosted here). */
  public long rejectedDispatches() {
    return rejected.sum();
  }

  public double computeMillis() {
    return computeNanos.sum() / 1e6;
  }

  /** Tokens computed by one expert. */
  public long tokens(int layer, int group, int expert) {
    if (layer < 0
        || layer >= cfg.numLayers()
        || group < 0
        || group >= groups
        || expert < 0
        || expert >= maxExperts) {
      return 0;
    }
    return perExpert.get((layer * groups + group) * maxExperts + expert);
  }

  /** One line: the totals and the busiest experts, e.g. for {@code NodeStatus.experts}. */
  public String summary(int hottest) {
    List<long[]> hot = new ArrayList<>();
    for (int i = 0; i < perExpert.length(); i++) {
      long n = perExpert.get(i);
      if (n > 0) {
        hot.add(new long[] {i, n});
      }
    }
    hot.sort(Comparator.<long[]>comparingLong(a -> -a[1]).thenComparingLong(a -> a[0]));
    StringBuilder sb =
        new StringBuilder(
            String.format(
                Locale.ROOT,
                "dispatches=%d rows=%d tokens=%d experts_run=%d rejected=%d compute_ms=%.1f",
                dispatches(),
                rows(),
                tokens(),
                expertsRun(),
                rejectedDispatches(),
                computeMillis()));
    if (!hot.isEmpty()) {
      sb.append("; hottest:");
      for (int i = 0; i < Math.min(hottest, hot.size()); i++) {
        int idx = (int) hot.get(i)[0];
        int e = idx % maxExperts;
        int g = (idx / maxExperts) % groups;
        int l = idx / maxExperts / groups;
        sb.append(' ')
            .append('L')
            .append(l)
            .append('/')
            .append(cfg.expertGroups().get(g).name())
            .append("/e")
            .append(e)
            .append('=')
            .append(hot.get(i)[1]);
      }
    }
    return sb.toString();
  }
}
