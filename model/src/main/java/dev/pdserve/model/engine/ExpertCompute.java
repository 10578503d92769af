package dev.pdserve.model.engine;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.graph.ExpertGraph;
import dev.pdserve.model.onnx.GraphBuilder;
import dev.pdserve.model.onnx.OrtGraph;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.QuantNames;
import dev.pdserve.model.quant.WeightComponent;
import dev.pdserve.model.quant.WeightQuantization;
import dev.pdserve.model.weights.ModelWeights;
import dev.pdserve.model.weights.WeightNames;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;

/**
 * Runs routed experts grouped per expert: the rows routed to one expert go through it together in
 * one ONNX Runtime call, so cost grows with rows × k, not with the number of experts. One session
 * per distinct expert shape serves every expert (the weights are inputs). Used in-process by {@link
 * LocalExperts} and by expert shards for the experts they host.
 */
public final class ExpertCompute implements AutoCloseable {
  private final ModelConfig cfg;
  private final ModelWeights weights;
  private final OrtRuntime runtime;
  private final HostedExperts hosted;
  private final OrtGraph[][] graphs; // per layer and group
  private final QuantFormat[] formats; // per layer; null = fp32

  /** Which experts this process computes. */
  public interface HostedExperts {
    boolean hosts(int layer, int group, int expert);

    HostedExperts ALL = (l, g, e) -> true;
  }

  public ExpertCompute(
      ModelConfig cfg, ModelWeights weights, OrtRuntime runtime, HostedExperts hosted) {
    this.cfg = cfg;
    this.weights = weights;
    this.runtime = runtime;
    this.hosted = hosted;
    WeightQuantization quant = weights.quantization();
    List<ExpertGroup> groups = cfg.expertGroups();
    this.graphs = new OrtGraph[cfg.numLayers()][groups.size()];
    this.formats = new QuantFormat[cfg.numLayers()];
    Map<String, OrtGraph> byShape = new HashMap<>();
    try {
      for (int l = 0; l < cfg.numLayers(); l++) {
        if (cfg.layerKind(l) != LayerKind.MOE) {
          continue;
        }
        Optional<QuantFormat> f = quant.format(cfg, l, WeightComponent.ROUTED_EXPERTS);
        formats[l] = f.orElse(null);
        for (int g : cfg.groupsInLayer(l)) {
          int inter = groups.get(g).intermediate();
          graphs[l][g] =
              byShape.computeIfAbsent(
                  inter + "/" + f.map(QuantFormat::tag).orElse("fp32"),
                  key -> {
                    GraphBuilder b =
                        f.isPresent()
                            ? ExpertGraph.build(cfg.hidden(), inter, f.get())
                            : ExpertGraph.build(cfg.hidden(), inter);
                    return OrtGraph.create(
                        b.build().getGraph().getName(), b.build(), List.of(), Map.of(), runtime);
                  });
        }
      }
    } catch (RuntimeException e) {
      byShape.values().forEach(OrtGraph::close);
      throw e;
    }
  }

  public HostedExperts hosted() {
    return hosted;
  }

  /** Expert id of a slot that is not to be computed here (another process computes it). */
  public static final int NO_EXPERT = -1;

  /**
   * Adds, for every (row, slot) whose expert is hosted here, {@code (double)(w · y)} into {@code
   * acc[row·H + d]}. Slots whose experts live elsewhere, and slots whose id is negative ({@link
   * #NO_EXPERT}), are left for other processes and contribute nothing. Each expert runs once, on
   * its rows in ascending row order, so its output rows do not depend on which other experts run.
   *
   * @return the number of distinct experts run
   */
  public int accumulate(RoutedBatch batch, double[] acc) {
    int h = batch.hidden();
    int k = batch.topK();
    int layer = batch.layer();
    // bucket (row, slot) pairs per (group, expert)
    Map<Long, int[]> buckets = new TreeMap<>();
    Map<Long, Integer> counts = new HashMap<>();
    for (int r = 0; r < batch.rows(); r++) {
      int g = batch.group()[r];
      for (int j = 0; j < k; j++) {
        long id = batch.expertIds()[r * k + j];
        if (id < 0) {
          continue;
        }
        int e = (int) id;
        if (!hosted.hosts(layer, g, e)) {
          continue;
        }
        long key = ((long) g << 32) | e;
        int c = counts.getOrDefault(key, 0);
        int[] list = buckets.computeIfAbsent(key, x -> new int[batch.rows() * 2]);
        list[c * 2] = r;
        list[c * 2 + 1] = j;
        counts.put(key, c + 1);
      }
    }
    for (Map.Entry<Long, int[]> entry : buckets.entrySet()) {
      int g = (int) (entry.getKey() >>> 32);
      int e = (int) (long) entry.getKey();
      int n = counts.get(entry.getKey());
      int[] pairs = entry.getValue();
      int rowsIn = Math.max(n, ExpertGraph.MIN_ROWS);
      float[] x = new float[rowsIn * h];
      for (int i = 0; i < rowsIn; i++) {
        int r = pairs[Math.min(i, n - 1) * 2];
        System.arraycopy(batch.hn(), r * h, x, i * h, h);
      }
      float[] y = run(layer, g, e, x, rowsIn);
      for (int i = 0; i < n; i++) {
        int r = pairs[i * 2];
        float w = batch.weights()[r * k + pairs[i * 2 + 1]];
        int yo = i * h;
        int ao = r * h;
        for (int d = 0; d < h; d++) {
          acc[ao + d] += (double) (w * y[yo + d]);
        }
      }
    }
    return buckets.size();
  }

  private float[] run(int layer, int g, int e, float[] x, int rows) {
    QuantFormat f = formats[layer];
    try (OnnxTensor xt = runtime.floatTensor(x, rows, cfg.hidden())) {
      Map<String, OnnxTensor> in = new HashMap<>();
      in.put("x", xt);
      for (String p : ExpertGraph.PROJECTIONS) {
        String base = WeightNames.expert(cfg, layer, g, e, p + "_proj");
        if (f == null) {
          in.put("w_" + p, weights.tensor(base));
        } else {
          in.put(ExpertGraph.codesInput(p), weights.tensor(QuantNames.codes(base, f)));
          in.put(ExpertGraph.scalesInput(p), weights.tensor(QuantNames.scales(base, f)));
          if (f.zeroPoints()) {
            in.put(ExpertGraph.zeroPointsInput(p), weights.tensor(QuantNames.zeroPoints(base, f)));
          }
        }
      }
      try (OrtSession.Result res = graphs[layer][g].run(in)) {
        return OrtGraph.floats(res, 0);
      }
    }
  }

  @Override
  public void close() {
    Set<OrtGraph> distinct = Collections.newSetFromMap(new IdentityHashMap<>());
    for (OrtGraph[] perLayer : graphs) {
      for (OrtGraph og : perLayer) {
        if (og != null) {
          distinct.add(og);
        }
      }
    }
    distinct.forEach(OrtGraph::close);
  }
}
