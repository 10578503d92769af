package dev.pdserve.model.engine;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.graph.EmbedGraph;
import dev.pdserve.model.graph.HeadGraph;
import dev.pdserve.model.graph.LayerGraph;
import dev.pdserve.model.onnx.GraphBuilder;
import dev.pdserve.model.onnx.OrtGraph;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.ModelWeights;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Runs the model's dense parts as ONNX Runtime sessions (embedding, one graph per decoder layer,
 * final norm + LM head) over a batch of sequences, and hands the routed experts of MoE layers to an
 * {@link ExpertBackend}. A step may mix sequences of different lengths and different numbers of new
 * tokens; each sequence's result does not depend on what it is batched with.
 */
public final class ModelRunner implements AutoCloseable {
  private final ModelConfig cfg;
  private final OrtRuntime runtime;
  private final OrtGraph embed;
  private final OrtGraph head;
  private final OrtGraph[] layers;
  private final Rope rope;
  private final Numerics numerics;

  /** A runner with {@link Numerics#DEFAULT} (fp32 KV). */
  public ModelRunner(ModelConfig cfg, ModelWeights weights, OrtRuntime runtime) {
    this(cfg, weights, runtime, Numerics.DEFAULT);
  }

  public ModelRunner(ModelConfig cfg, ModelWeights weights, OrtRuntime runtime, Numerics numerics) {
    this.cfg = cfg;
    this.runtime = runtime;
    this.rope = new Rope(cfg);
    this.numerics = numerics;
    if (!numerics.weights().equals(weights.quantization())) {
      throw new IllegalArgumentException(
          "the runner is asked for weights "
              + numerics.weights().describe()
              + " over weights loaded as "
              + weights.quantization().describe());
    }
    List<OrtGraph> made = new ArrayList<>();
    try {
      this.embed = session(EmbedGraph.build(cfg, numerics.weights()), weights, made);
      this.head = session(HeadGraph.build(cfg, numerics.weights()), weights, made);
      this.layers = new OrtGraph[cfg.numLayers()];
      for (int l = 0; l < cfg.numLayers(); l++) {
        layers[l] =
            session(
                LayerGraph.build(cfg, l, numerics.kvDtype(), numerics.weights()), weights, made);
      }
    } catch (RuntimeException e) {
      made.forEach(OrtGraph::close);
      throw e;
    }
  }

  private OrtGraph session(GraphBuilder b, ModelWeights weights, List<OrtGraph> made) {
    var model = b.build();
    OrtGraph g =
        OrtGraph.create(
            model.getGraph().getName(),
            model,
            b.weights().keySet(),
            weights.forGraph(b.weights().keySet()),
            runtime);
    made.add(g);
    return g;
  }

  public ModelConfig config() {
    return cfg;
  }

  /** The numerics the layer graphs were built for (the KV values they produce are rounded so). */
  public Numerics numerics() {
    return numerics;
  }

  /** Embedding rows {@code [n, H]} of the given token ids. */
  public float[] embed(int[] ids) {
    long[] l = new long[ids.length];
    for (int i = 0; i < ids.length; i++) {
      if (ids[i] < 0 || ids[i] >= cfg.vocabSize()) {
        throw new IllegalArgumentException(
            "token id " + ids[i] + " is outside the vocabulary (0.." + (cfg.vocabSize() - 1) + ")");
      }
      l[i] = ids[i];
    }
    try (OnnxTensor t = runtime.longTensor(l, ids.length);
        OrtSession.Result r = embed.run(Map.of("ids", t))) {
      return OrtGraph.floats(r, 0);
    }
  }

  /** Logits {@code [m, V]} for {@code m} final hidden rows. */
  public float[] logits(float[] rows, int m) {
    int padded = numerics.weights().paddedRows(m); // never a single row (see LayerGraph)
    float[] in = padded == m ? rows : Arrays.copyOf(rows, padded * cfg.hidden());
    try (OnnxTensor t = runtime.floatTensor(in, padded, cfg.hidden());
        OrtSession.Result r = head.run(Map.of("h", t))) {
      float[] out = OrtGraph.floats(r, 0);
      return padded == m ? out : Arrays.copyOf(out, m * cfg.vocabSize());
    }
  }

  /**
   * One forward step over {@code seqs}: writes each sequence's new KV into its cache (layer by
   * layer), advances the caches, and returns the logits of the last new token of every sequence
   * that asked for them (null entries for the others).
   */
  public float[][] forward(List<SequenceStep> seqs, ExpertBackend experts) {
    Step step = new Step(seqs);
    try {
      int[] ids = new int[step.realRows];
      int c = 0;
      for (SequenceStep s : seqs) {
        for (int t : s.tokens()) {
          ids[c++] = t;
        }
      }
      float[] emb = embed(ids);
      float[] x = new float[step.m * cfg.hidden()];
      c = 0;
      for (SequenceStep s : seqs) {
        for (int t = 0; t < s.tokens().length; t++, c++) {
          float[] src = s.embeddings() != null ? s.embeddings() : emb;
          int so = s.embeddings() != null ? t * cfg.hidden() : c * cfg.hidden();
          System.arraycopy(src, so, x, step.rowOf[c] * cfg.hidden(), cfg.hidden());
        }
      }
      for (int l = 0; l < cfg.numLayers(); l++) {
        x = step.layer(l, x, experts);
      }
      for (SequenceStep s : seqs) {
        s.kv().advance(s.tokens().length);
      }
      return step.logits(x);
    } finally {
      step.close();
    }
  }

  /**
   * Runs decoder layer {@code layer} alone on given input rows ({@code [realRows, H]}, the new
   * tokens of every sequence in order), writing that layer's KV, and returns the output rows. The
   * caches are not advanced. For tests and diagnostics of one layer.
   */
  public float[] runLayer(int layer, List<SequenceStep> seqs, float[] rows, ExpertBackend experts) {
    Step step = new Step(seqs);
    try {
      int h = cfg.hidden();
      float[] x = new float[step.m * h];
      for (int c = 0; c < step.realRows; c++) {
        System.arraycopy(rows, c * h, x, step.rowOf[c] * h, h);
      }
      float[] out = step.layer(layer, x, experts);
      float[] real = new float[step.realRows * h];
      for (int c = 0; c < step.realRows; c++) {
        System.arraycopy(out, step.rowOf[c] * h, real, c * h, h);
      }
      return real;
    } finally {
      step.close();
    }
  }

  /** The inputs every layer of one step shares: padded layout, rotary angles, mask, KV slots. */
  private final class Step implements AutoCloseable {
    final List<SequenceStep> seqs;
    final int b;
    final int tq;
    final int m;
    final int sLen;
    final int realRows;
    final int[] rowOf; // padded row of each real token
    final boolean[] visReal;
    final float[] pastK;
    final float[] pastV;
    // Direct buffers reused by every layer of the step (ONNX Runtime reads them at run time).
    final FloatBuffer xBuf;
    final FloatBuffer pkBuf;
    final FloatBuffer pvBuf;
    final OnnxTensor xT;
    final OnnxTensor pkT;
    final OnnxTensor pvT;
    final OnnxTensor cosT;
    final OnnxTensor sinT;
    final OnnxTensor maskT;
    final OnnxTensor visT;
    final OnnxTensor idxT;

    Step(List<SequenceStep> seqs) {
      this.seqs = seqs;
      this.b = seqs.size();
      int kvh = cfg.numKvHeads();
      int hd = cfg.headDim();
      int maxNew = 0;
      int p = 0;
      int real = 0;
      for (SequenceStep s : seqs) {
        maxNew = Math.max(maxNew, s.tokens().length);
        p = Math.max(p, s.kv().length());
        real += s.tokens().length;
        if (s.kv().length() + s.tokens().length > cfg.maxPositions()) {
          throw new IllegalArgumentException(
              "sequence would reach "
                  + (s.kv().length() + s.tokens().length)
                  + " positions; the model's context is "
                  + cfg.maxPositions());
        }
      }
      // Never a single row: ONNX Runtime reduces a single row along another path than several.
      int q = b == 1 && maxNew == 1 ? 2 : maxNew;
      // int8 compute: an even number of rows (see WeightQuantization.paddedRows).
      this.tq = numerics.weights().paddedRows(b * q) == b * q ? q : q + 1;
      this.m = b * tq;
      this.sLen = p + tq;
      this.realRows = real;
      this.rowOf = new int[real];
      this.visReal = new boolean[real];
      float[] cos = new float[m * rope.half()];
      float[] sin = new float[m * rope.half()];
      float[] mask = new float[b * tq * sLen];
      boolean[] vision = new boolean[m];
      long[] kvIndex = new long[b * kvh * tq * 3];
      int c = 0;
      for (int i = 0; i < b; i++) {
        SequenceStep s = seqs.get(i);
        int past = s.kv().length();
        int n = s.tokens().length;
        for (int t = 0; t < tq; t++) {
          int row = i * tq + t;
          int mo = row * sLen;
          for (int hh = 0; hh < kvh; hh++) {
            int ko = ((i * kvh + hh) * tq + t) * 3;
            kvIndex[ko] = i;
            kvIndex[ko + 1] = hh;
            kvIndex[ko + 2] = past + t; // right after the sequence's own past
          }
          if (t < n) {
            if (s.positions() == null) {
              rope.fill(past + t, cos, sin, row);
            } else {
              rope.fill(
                  s.position(t, Rope.T),
                  s.position(t, Rope.H),
                  s.position(t, Rope.W),
                  cos,
                  sin,
                  row);
            }
            vision[row] = s.isVision(t);
            for (int j = 0; j < sLen; j++) {
              mask[mo + j] = j <= past + t ? 0f : LayerGraph.MASKED;
            }
            rowOf[c] = row;
            visReal[c] = s.isVision(t);
            c++;
          } else {
            rope.fill(0, cos, sin, row);
            for (int j = 0; j < sLen; j++) {
              mask[mo + j] =
                  j == past + t ? 0f : LayerGraph.MASKED; // padding attends to itself only
            }
          }
        }
      }
      this.pastK = new float[b * kvh * sLen * hd];
      this.pastV = new float[b * kvh * sLen * hd];
      this.cosT = runtime.floatTensor(cos, m, rope.half());
      this.sinT = runtime.floatTensor(sin, m, rope.half());
      this.maskT = runtime.floatTensor(mask, b, tq, sLen);
      this.visT = runtime.boolTensor(vision, m, 1);
      this.idxT = runtime.longTensor(kvIndex, b, kvh, tq, 3);
      this.xBuf = OrtRuntime.directFloats(m * cfg.hidden());
      this.pkBuf = OrtRuntime.directFloats(pastK.length);
      this.pvBuf = OrtRuntime.directFloats(pastV.length);
      this.xT = runtime.floatTensor(xBuf, m, cfg.hidden());
      this.pkT = runtime.floatTensor(pkBuf, b, kvh, sLen, hd);
      this.pvT = runtime.floatTensor(pvBuf, b, kvh, sLen, hd);
    }

    /**
     * Runs layer {@code l} on padded rows {@code x}, stores its KV, returns the new padded rows.
     */
    float[] layer(int l, float[] x, ExpertBackend experts) {
      int h = cfg.hidden();
      int kvh = cfg.numKvHeads();
      int hd = cfg.headDim();
      Arrays.fill(pastK, 0f);
      Arrays.fill(pastV, 0f);
      for (int i = 0; i < b; i++) {
        seqs.get(i).kv().read(l, pastK, pastV, i * kvh * sLen * hd, sLen);
      }
      boolean moe = cfg.layerKind(l) == LayerKind.MOE;
      Map<String, OnnxTensor> in = new HashMap<>();
      xBuf.clear();
      xBuf.put(x, 0, m * h).flip();
      pkBuf.clear();
      pkBuf.put(pastK).flip();
      pvBuf.clear();
      pvBuf.put(pastV).flip();
      {
        in.put("x", xT);
        in.put("cos", cosT);
        in.put("sin", sinT);
        in.put("past_k", pkT);
        in.put("past_v", pvT);
        in.put("mask", maskT);
        in.put("kv_index", idxT);
        if (moe && cfg.groupsInLayer(l).size() > 1) {
          in.put("vision", visT);
        }
        try (OrtSession.Result r = layers[l].run(in)) {
          float[] kNew = OrtGraph.floats(r, moe ? 4 : 1);
          float[] vNew = OrtGraph.floats(r, moe ? 5 : 2);
          for (int i = 0; i < b; i++) {
            seqs.get(i)
                .kv()
                .write(l, kNew, vNew, i * kvh * tq * hd, tq, seqs.get(i).tokens().length);
          }
          float[] out = OrtGraph.floats(r, 0);
          if (moe) {
            routedAdd(
                l,
                out,
                OrtGraph.floats(r, 1),
                OrtGraph.longs(r, 2),
                OrtGraph.floats(r, 3),
                rowOf,
                visReal,
                experts);
          }
          return out;
        }
      }
    }

    float[][] logits(float[] x) {
      int h = cfg.hidden();
      float[][] out = new float[b][];
      int want = 0;
      for (SequenceStep s : seqs) {
        want += s.wantLogits() ? 1 : 0;
      }
      if (want == 0) {
        return out;
      }
      float[] rows = new float[want * h];
      int w = 0;
      for (int i = 0; i < b; i++) {
        SequenceStep s = seqs.get(i);
        if (s.wantLogits()) {
          System.arraycopy(x, (i * tq + s.tokens().length - 1) * h, rows, w * h, h);
          w++;
        }
      }
      float[] logits = ModelRunner.this.logits(rows, want);
      int v = cfg.vocabSize();
      w = 0;
      for (int i = 0; i < b; i++) {
        if (seqs.get(i).wantLogits()) {
          out[i] = Arrays.copyOfRange(logits, w * v, (w + 1) * v);
          w++;
        }
      }
      return out;
    }

    @Override
    public void close() {
      xT.close();
      pkT.close();
      pvT.close();
      cosT.close();
      sinT.close();
      maskT.close();
      visT.close();
      idxT.close();
    }
  }

  /** x[row] = base[row] + routed(hn[row]) for every real row. */
  private void routedAdd(
      int layer,
      float[] base,
      float[] hn,
      long[] idx,
      float[] w,
      int[] rowOf,
      boolean[] visReal,
      ExpertBackend experts) {
    int h = cfg.hidden();
    int k = cfg.topK();
    int n = rowOf.length;
    float[] hnReal = new float[n * h];
    long[] ids = new long[n * k];
    float[] ws = new float[n * k];
    int[] group = new int[n];
    List<Integer> groups = cfg.groupsInLayer(layer);
    for (int i = 0; i < n; i++) {
      group[i] = visReal[i] && groups.size() > 1 ? groups.get(1) : groups.get(0);
      int row = rowOf[i];
      System.arraycopy(hn, row * h, hnReal, i * h, h);
      System.arraycopy(idx, row * k, ids, i * k, k);
      System.arraycopy(w, row * k, ws, i * k, k);
    }
    float[] routed = experts.routed(new RoutedBatch(layer, n, h, k, hnReal, group, ids, ws));
    for (int i = 0; i < n; i++) {
      int ro = rowOf[i] * h;
      for (int d = 0; d < h; d++) {
        base[ro + d] += routed[i * h + d];
      }
    }
  }

  @Override
  public void close() {
    embed.close();
    head.close();
    for (OrtGraph g : layers) {
      g.close();
    }
  }
}
