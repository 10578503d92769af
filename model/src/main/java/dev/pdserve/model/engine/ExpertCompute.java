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
import dev.pdserve.model.quant.QuantizedMatrix;
import dev.pdserve.model.quant.WeightComponent;
import dev.pdserve.model.quant.WeightQuantization;
import dev.pdserve.model.weights.ModelWeights;
import dev.pdserve.model.weights.WeightNames;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReadWriteLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * Runs routed experts grouped per expert: the rows routed to one expert go through it together in
 * one ONNX Runtime call, so cost grows with rows × k, not with the number of experts. Each hosted
 * expert has its own session, created on its first use, which owns the expert's weights as constant
 * initializers (fp32, or quantized from the source when created): ONNX Runtime prepacks them once,
 * and neither {@link ModelWeights} nor the weight source keeps another copy. Used in-process by
 * {@link LocalExperts} and by expert shards for the experts they host.
 */
public final class ExpertCompute implements AutoCloseable {
  private final ModelConfig cfg;
  private final ModelWeights weights;
  private final OrtRuntime runtime;
  private final HostedExperts hosted;
  private final QuantFormat[] formats; // per layer; null = fp32
  private final int maxExperts;
  private final Map<Long, OrtGraph> sessions = new ConcurrentHashMap<>();
  private final ReadWriteLock lifecycle = new ReentrantReadWriteLock();
  private volatile boolean closed;

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
    this.formats = new QuantFormat[cfg.numLayers()];
    for (int l = 0; l < cfg.numLayers(); l++) {
      if (cfg.layerKind(l) == LayerKind.MOE) {
        formats[l] = quant.format(cfg, l, WeightComponent.ROUTED_EXPERTS).orElse(null);
      }
    }
    this.maxExperts = cfg.expertGroups().stream().mapToInt(ExpertGroup::numExperts).max().orElse(1);
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
      int rowsIn = Math.max(weights.quantization().paddedRows(n), ExpertGraph.MIN_ROWS);
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
    try (OnnxTensor xt = runtime.floatTensor(x, rows, cfg.hidden());
        OrtSession.Result res = session(layer, g, e).run(Map.of("x", xt))) {
      return OrtGraph.floats(res, 0);
    }
  }

  /** The session of one expert, created (with its weights) on first use. */
  private OrtGraph session(int layer, int g, int e) {
    long key = ((long) layer * cfg.expertGroups().size() + g) * maxExperts + e;
    OrtGraph og = sessions.get(key);
    if (og != null) {
      return og;
    }
    // Experts are made in parallel (only one per key); close waits for those being made.
    lifecycle.readLock().lock();
    try {
      if (closed) {
        throw new IllegalStateException("expert compute is closed");
      }
      return sessions.computeIfAbsent(key, k -> createSession(layer, g, e));
    } finally {
      lifecycle.readLock().unlock();
    }
  }

  private OrtGraph createSession(int layer, int g, int e) {
    QuantFormat f = formats[layer];
    int inter = cfg.expertGroups().get(g).intermediate();
    GraphBuilder b =
        f == null
            ? ExpertGraph.build(cfg.hidden(), inter)
            : ExpertGraph.build(cfg.hidden(), inter, f);
    String name = "expert_l" + layer + "_g" + g + "_e" + e;
    if (f != null && weights.storesQuantized()) {
      return storedSession(name, b, layer, g, e, f);
    }
    Map<String, ByteBuffer> data = new HashMap<>();
    for (String p : ExpertGraph.PROJECTIONS) {
      String base = WeightNames.expert(cfg, layer, g, e, p + "_proj");
      if (f == null) {
        data.put(ExpertGraph.fp32Weight(p), littleEndian(weights.sourceTensor(base).data()));
      } else {
        QuantizedMatrix m = weights.quantize(base, f);
        data.put(ExpertGraph.codesInput(p), ByteBuffer.wrap(m.codes()));
        data.put(ExpertGraph.scalesInput(p), littleEndian(FloatBuffer.wrap(m.scales())));
        if (f.zeroPoints()) {
          data.put(ExpertGraph.zeroPointsInput(p), ByteBuffer.wrap(m.zeroPoints()));
        }
      }
    }
    return OrtGraph.createOwning(name, b.build(), data, runtime);
  }

  /**
   * The session of an expert of a pre-quantized checkpoint: its weights are {@link ModelWeights}'
   * tensors over the checkpoint's mapping, bound as initializers without a copy (ONNX Runtime
   * prepacks from them; {@code weights} keeps the tensors until it closes, after this).
   */
  private OrtGraph storedSession(
      String name, GraphBuilder b, int layer, int g, int e, QuantFormat f) {
    Map<String, OnnxTensor> bound = new HashMap<>();
    for (String p : ExpertGraph.PROJECTIONS) {
      String base = WeightNames.expert(cfg, layer, g, e, p + "_proj");
      bound.put(ExpertGraph.codesInput(p), weights.tensor(QuantNames.codes(base, f)));
      bound.put(ExpertGraph.scalesInput(p), weights.tensor(QuantNames.scales(base, f)));
      if (f.zeroPoints()) {
        bound.put(ExpertGraph.zeroPointsInput(p), weights.tensor(QuantNames.zeroPoints(base, f)));
      }
    }
    return OrtGraph.create(name, b.build(), b.weights().keySet(), bound, runtime);
  }

  private static ByteBuffer littleEndian(FloatBuffer values) {
    FloatBuffer v = values.duplicate().rewind();
    ByteBuffer out = ByteBuffer.allocate(v.remaining() * 4).order(ByteOrder.LITTLE_ENDIAN);
    out.asFloatBuffer().put(v);
    return out;
  }

  /**
   * Creates the session of every hosted expert now (as a first use would), so that memory and load
   * time are paid before serving or measuring: returns how many were created.
   */
  public int loadAll() {
    List<int[]> todo = new ArrayList<>();
    for (int l = 0; l < cfg.numLayers(); l++) {
      if (cfg.layerKind(l) != LayerKind.MOE) {
        continue;
      }
      for (int g : cfg.groupsInLayer(l)) {
        for (int e = 0; e < cfg.expertGroups().get(g).numExperts(); e++) {
          if (hosted.hosts(l, g, e)) {
            todo.add(new int[] {l, g, e});
          }
        }
      }
    }
    int before = sessions.size();
    // quantizing is Java work, one expert per task: spread it over the cores
    todo.parallelStream().forEach(k -> session(k[0], k[1], k[2]));
    return sessions.size() - before;
  }

  /** Sessions created so far (experts that have run at least once, or {@link #loadAll}). */
  public int sessionCount() {
    return sessions.size();
  }

  @Override
  public void close() {
    lifecycle.writeLock().lock();
    try {
      if (closed) {
        return;
      }
      closed = true;
      sessions.values().forEach(OrtGraph::close);
      sessions.clear();
    } finally {
      lifecycle.writeLock().unlock();
    }
  }
}
