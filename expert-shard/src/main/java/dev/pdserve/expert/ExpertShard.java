package dev.pdserve.expert;

import com.google.common.base.Ticker;
import dev.pdserve.core.config.ExpertRange;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.RoutedBatch;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.ModelWeights;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;

/**
 * An expert shard's domain: the routed experts of one index range (e.g. {@code 0-31}) in every MoE
 * layer and every expert group (text and vision), run grouped per expert by {@link ExpertCompute}.
 * {@link #compute} checks a dispatch against the model and the range, then returns per-row float64
 * partial sums of {@code (double)(w · y)} over the slots it was given; slots marked {@link
 * ExpertCompute#NO_EXPERT} belong to other shards and contribute nothing. Thread-safe: dispatches
 * run concurrently. Whether the shard has gone quiet ({@link #quietFor}), which a draining shard
 * waits for, is read from its {@link Ticker}.
 */
public final class ExpertShard implements AutoCloseable {
  private final String id;
  private final ExpertRange range;
  private final ModelConfig cfg;
  private final ExpertCompute compute;
  private final ExpertShardStats stats;
  private final ExpertShardMetrics metrics;
  private final Ticker ticker;
  private final AtomicInteger running = new AtomicInteger();
  private volatile boolean called;
  private volatile long lastCallNanos;
  private final AtomicLong arrivals = new AtomicLong();

  /**
   * A shard without metrics, on the system ticker.
   *
   * @param id the shard's node id (named in errors and status)
   * @param range the expert indices hosted, in every MoE layer and group
   * @param weights model weights (the caller's: closed after this shard)
   */
  public ExpertShard(String id, ExpertRange range, ModelWeights weights, OrtRuntime runtime) {
    this(id, range, weights, runtime, ExpertShardMetrics.NONE, Ticker.systemTicker());
  }

  /**
   * As above, measuring each dispatch through {@code metrics}; {@code ticker} is the clock of
   * {@link #quietFor}.
   */
  public ExpertShard(
      String id,
      ExpertRange range,
      ModelWeights weights,
      OrtRuntime runtime,
      ExpertShardMetrics metrics,
      Ticker ticker) {
    this.metrics = metrics;
    this.ticker = ticker;
    this.id = id;
    this.range = range;
    this.cfg = weights.config();
    int largest = cfg.expertGroups().stream().mapToInt(ExpertGroup::numExperts).max().orElse(0);
    if (range.first() >= largest) {
      throw new IllegalArgumentException(
          "expert range "
              + range
              + " of shard "
              + id
              + " is outside every expert group of "
              + cfg.name()
              + " (largest has "
              + largest
              + " experts)");
    }
    this.compute =
        new ExpertCompute(cfg, weights, runtime, (layer, group, expert) -> range.contains(expert));
    this.stats = new ExpertShardStats(cfg);
  }

  /**
   * A shard for a node: its id and range ({@code pdserve.expert.range}, else its part of {@code
   * pdserve.expert.shard-count}, else all experts; see {@link NodeConfig#expertRange}).
   */
  public static ExpertShard forNode(NodeConfig node, ModelWeights weights, OrtRuntime runtime) {
    return forNode(node, weights, runtime, ExpertShardMetrics.NONE);
  }

  /** As above, measuring each dispatch through {@code metrics}. */
  public static ExpertShard forNode(
      NodeConfig node, ModelWeights weights, OrtRuntime runtime, ExpertShardMetrics metrics) {
    int largest =
        weights.config().expertGroups().stream().mapToInt(ExpertGroup::numExperts).max().orElse(1);
    return new ExpertShard(
        node.nodeId(), node.expertRange(largest), weights, runtime, metrics, Ticker.systemTicker());
  }

  public String id() {
    return id;
  }

  public ExpertRange range() {
    return range;
  }

  public ModelConfig model() {
    return cfg;
  }

  public ExpertShardStats stats() {
    return stats;
  }

  /** Whether this shard computes {@code expert} of {@code group} in {@code layer}. */
  public boolean hosts(int layer, int group, int expert) {
    return layer >= 0
        && layer < cfg.numLayers()
        && cfg.groupsInLayer(layer).contains(group)
        && expert >= 0
        && expert < cfg.expertGroups().get(group).numExperts()
        && range.contains(expert);
  }

  /** What it hosts and what it has done, one line (for {@code NodeStatus.experts}). */
  public String describe() {
    String groups =
        cfg.expertGroups().stream().map(ExpertGroup::name).collect(Collectors.joining(", "));
    return "shard "
        + id
        + " hosts experts "
        + range
        + " ("
        + groups
        + ") of every MoE layer; "
        + stats.summary(5);
  }

  /**
   * Computes this shard's slots of {@code batch}.
   *
   * @throws InvalidDispatchException if the batch does not fit the model (hidden size, top-k, a
   *     layer out of range or without experts, a group not in the layer, an expert id outside its
   *     group, a non-finite weight)
   * @throws ExpertNotHostedException if a slot names an expert outside this shard's range
   */
  public ExpertPartial compute(RoutedBatch batch) {
    lastCallNanos = ticker.read();
    called = true;
    arrivals.incrementAndGet();
    running.incrementAndGet();
    try {
      return computeChecked(batch);
    } finally {
      running.decrementAndGet();
    }
  }

  /** Dispatches that have arrived so far (computed, refused or running): changes with each one. */
  public long arrivals() {
    return arrivals.get();
  }

  /** Dispatches being computed now. */
  public int running() {
    return running.get();
  }

  /**
   * Whether no dispatch is being computed and none has arrived for {@code quiet} (by the shard's
   * ticker): what a draining shard waits for, since callers may still hold a placement naming it.
   */
  public boolean quietFor(Duration quiet) {
    return running.get() == 0 && (!called || ticker.read() - lastCallNanos >= quiet.toNanos());
  }

  private ExpertPartial computeChecked(RoutedBatch batch) {
    int tokens;
    try {
      tokens = validate(batch);
    } catch (RuntimeException e) {
      stats.rejected();
      throw e;
    }
    long start = System.nanoTime();
    double[] acc = new double[batch.rows() * batch.hidden()];
    int run = compute.accumulate(batch, acc);
    long nanos = System.nanoTime() - start;
    stats.dispatched(batch.rows(), tokens, run, nanos);
    metrics.computed(batch.rows(), tokens, nanos);
    int k = batch.topK();
    for (int r = 0; r < batch.rows(); r++) {
      for (int j = 0; j < k; j++) {
        long e = batch.expertIds()[r * k + j];
        if (e >= 0) {
          stats.tokenFor(batch.layer(), batch.group()[r], (int) e);
        }
      }
    }
    return new ExpertPartial(acc, run);
  }

  /** Checks the batch; returns the number of slots to compute. */
  private int validate(RoutedBatch batch) {
    if (batch.hidden() != cfg.hidden()) {
      throw new InvalidDispatchException(
          "hidden is "
              + batch.hidden()
              + ", but model "
              + cfg.name()
              + " has hidden size "
              + cfg.hidden());
    }
    if (batch.topK() != cfg.topK()) {
      throw new InvalidDispatchException(
          "top_k is "
              + batch.topK()
              + ", but model "
              + cfg.name()
              + " routes each token to "
              + cfg.topK()
              + " experts");
    }
    int layer = batch.layer();
    if (layer < 0 || layer >= cfg.numLayers()) {
      throw new InvalidDispatchException(
          "layer "
              + layer
              + " is out of range: model "
              + cfg.name()
              + " has layers 0.."
              + (cfg.numLayers() - 1));
    }
    if (cfg.layerKind(layer) != LayerKind.MOE) {
      throw new InvalidDispatchException(
          "layer "
              + layer
              + " is a "
              + cfg.layerKind(layer).name().toLowerCase(Locale.ROOT)
              + " layer; it has no routed experts");
    }
    List<Integer> groups = cfg.groupsInLayer(layer);
    int k = batch.topK();
    int slots = 0;
    for (int r = 0; r < batch.rows(); r++) {
      int g = batch.group()[r];
      if (!groups.contains(g)) {
        throw new InvalidDispatchException(
            "row "
                + r
                + ": group "
                + g
                + " is not an expert group of layer "
                + layer
                + " (groups "
                + groups
                + ")");
      }
      ExpertGroup group = cfg.expertGroups().get(g);
      for (int j = 0; j < k; j++) {
        long e = batch.expertIds()[r * k + j];
        if (e == ExpertCompute.NO_EXPERT) {
          continue;
        }
        if (e < 0 || e >= group.numExperts()) {
          throw new InvalidDispatchException(
              "row "
                  + r
                  + " slot "
                  + j
                  + ": expert "
                  + e
                  + " is outside the "
                  + group.name()
                  + " group (0.."
                  + (group.numExperts() - 1)
                  + ", or "
                  + ExpertCompute.NO_EXPERT
                  + " for a slot computed elsewhere)");
        }
        float w = batch.weights()[r * k + j];
        if (!Float.isFinite(w)) {
          throw new InvalidDispatchException(
              "row " + r + " slot " + j + ": weight " + w + " is not finite");
        }
        if (!range.contains((int) e)) {
          throw new ExpertNotHostedException(
              "shard "
                  + id
                  + " hosts experts "
                  + range
                  + " but was sent "
                  + group.name()
                  + " expert "
                  + e
                  + " of layer "
                  + layer,
              layer,
              g,
              (int) e);
        }
        slots++;
      }
    }
    return slots;
  }

  @Override
  public void close() {
    compute.close();
  }
}
