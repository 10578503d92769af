package dev.pdserve.model.reference;

import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.weights.FloatTensor;
import dev.pdserve.model.weights.WeightNames;
import dev.pdserve.model.weights.WeightSource;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * An independent, plain-Java float64 implementation of the ERNIE-4.5(-VL) MoE language model
 * (DESIGN.md §1), written straight from the math for readability, not speed. It is the oracle the
 * ONNX graphs are checked against: no ONNX Runtime, no batching, no fusion; one token at a time,
 * every weight widened from the fp32 tensors of a {@link WeightSource} to double.
 *
 * <p>Positions are 1-D: new token t of a call gets position {@code cache.length() + t}.
 */
public final class Float64Ernie {
  private final ModelConfig cfg;
  private final WeightSource weights;
  private final Map<String, long[]> expectedShapes;
  private final Map<String, double[][]> matrices = new HashMap<>();
  private final Map<String, double[]> vectors = new HashMap<>();

  public Float64Ernie(ModelConfig cfg, WeightSource weights) {
    this.cfg = cfg;
    this.weights = weights;
    this.expectedShapes = WeightNames.expected(cfg);
  }

  public ModelConfig config() {
    return cfg;
  }

  // ---------------------------------------------------------------- embedding and LM head

  /** The embedding row of {@code tokenId}. */
  public double[] embed(int tokenId) {
    if (tokenId < 0 || tokenId >= cfg.vocabSize()) {
      throw new IllegalArgumentException(
          "token id " + tokenId + " is outside [0, " + cfg.vocabSize() + ")");
    }
    return matrix(WeightNames.EMBED)[tokenId].clone();
  }

  /**
   * Final RMSNorm, then the LM head (the embedding matrix when tied): {@code logits[v] =
   * E[v]·norm(h)}.
   */
  public double[] logits(double[] hidden) {
    double[] normed = Math64.rmsNorm(hidden, vector(WeightNames.FINAL_NORM), cfg.rmsNormEps());
    double[][] head = matrix(cfg.tieEmbeddings() ? WeightNames.EMBED : WeightNames.LM_HEAD);
    return Math64.matVec(head, normed);
  }

  // ---------------------------------------------------------------- one decoder layer

  /**
   * One decoder layer for T new tokens of ONE sequence: {@code h = x + Attn(RMSNorm(x))}, {@code
   * out = h + MLP(RMSNorm(h))}. The new post-RoPE keys and values are appended to {@code cache}
   * (this layer's part); token t attends to every cached position and to new tokens 0..t.
   */
  public LayerTrace layer(
      int layer, double[][] x, int[] positions, boolean[] vision, KvCache64 cache) {
    int[][] p3 = new int[positions.length][];
    for (int t = 0; t < positions.length; t++) {
      p3[t] = new int[] {positions[t], positions[t], positions[t]};
    }
    return layer3d(layer, x, p3, vision, cache);
  }

  /**
   * {@link #layer} with 3-D rotary positions {@code positions[t] = (t, h, w)} (ERNIE-4.5-VL's image
   * tokens; see {@link Math64#ropeInterleaved3d}).
   */
  public LayerTrace layer3d(
      int layer, double[][] x, int[][] positions, boolean[] vision, KvCache64 cache) {
    int tokens = x.length;
    if (positions.length != tokens || vision.length != tokens) {
      throw new IllegalArgumentException(
          "layer "
              + layer
              + ": "
              + tokens
              + " rows but "
              + positions.length
              + " positions and "
              + vision.length
              + " modality flags");
    }
    for (double[] row : x) {
      if (row.length != cfg.hidden()) {
        throw new IllegalArgumentException(
            "layer "
                + layer
                + ": rows must have hidden size "
                + cfg.hidden()
                + ", got "
                + row.length);
      }
    }
    int headDim = cfg.headDim();
    int kvDim = cfg.numKvHeads() * headDim;
    double[][] wq = matrix(WeightNames.q(layer));
    double[][] wk = matrix(WeightNames.k(layer));
    double[][] wv = matrix(WeightNames.v(layer));
    double[][] wo = matrix(WeightNames.o(layer));
    double[] inputNorm = vector(WeightNames.inputNorm(layer));
    double[] postNorm = vector(WeightNames.postNorm(layer));

    // 1. Projections and RoPE for every new token; keys and values go into the cache.
    int past = cache.length(layer);
    double[][][] queries = new double[tokens][][]; // [t][head][headDim], post-RoPE
    double[][] newK = new double[tokens][kvDim];
    double[][] newV = new double[tokens][kvDim];
    for (int t = 0; t < tokens; t++) {
      double[] xn = Math64.rmsNorm(x[t], inputNorm, cfg.rmsNormEps());
      double[] q = Math64.matVec(wq, xn);
      double[] k = Math64.matVec(wk, xn);
      double[] v = Math64.matVec(wv, xn);
      queries[t] = new double[cfg.numHeads()][];
      for (int h = 0; h < cfg.numHeads(); h++) {
        queries[t][h] = rope(Math64.slice(q, h * headDim, headDim), positions[t]);
      }
      double[][] keyHeads = new double[cfg.numKvHeads()][];
      double[][] valueHeads = new double[cfg.numKvHeads()][];
      for (int h = 0; h < cfg.numKvHeads(); h++) {
        keyHeads[h] = rope(Math64.slice(k, h * headDim, headDim), positions[t]);
        valueHeads[h] = Math64.slice(v, h * headDim, headDim);
        System.arraycopy(keyHeads[h], 0, newK[t], h * headDim, headDim);
        System.arraycopy(valueHeads[h], 0, newV[t], h * headDim, headDim);
      }
      cache.append(layer, keyHeads, valueHeads);
    }

    // 2. Causal attention, the residual, and the MLP.
    double scale = 1.0 / Math.sqrt(headDim);
    double[][] out = new double[tokens][];
    double[][] attnResidual = new double[tokens][];
    double[][] mlpInput = new double[tokens][];
    int[][] expertIds = new int[tokens][];
    double[][] expertWeights = new double[tokens][];
    int[] group = new int[tokens];
    double[] margin = new double[tokens];
    for (int t = 0; t < tokens; t++) {
      int visible = past + t + 1; // cache positions 0 .. past+t
      double[] concat = new double[cfg.numHeads() * headDim];
      for (int h = 0; h < cfg.numHeads(); h++) {
        int kvHead = h / cfg.queryGroup();
        double[] scores = new double[visible];
        for (int j = 0; j < visible; j++) {
          scores[j] = Math64.dot(queries[t][h], cache.key(layer, j)[kvHead]) * scale;
        }
        double[] p = Math64.softmax(scores);
        for (int j = 0; j < visible; j++) {
          double[] value = cache.value(layer, j)[kvHead];
          for (int d = 0; d < headDim; d++) {
            concat[h * headDim + d] += p[j] * value[d];
          }
        }
      }
      double[] h = Math64.add(x[t], Math64.matVec(wo, concat));
      double[] hn = Math64.rmsNorm(h, postNorm, cfg.rmsNormEps());
      attnResidual[t] = h;
      mlpInput[t] = hn;

      double[] mlp;
      if (cfg.layerKind(layer) == LayerKind.DENSE) {
        mlp =
            Math64.swiglu(
                matrix(WeightNames.denseMlp(layer, "gate_proj")),
                matrix(WeightNames.denseMlp(layer, "up_proj")),
                matrix(WeightNames.denseMlp(layer, "down_proj")),
                hn);
        group[t] = -1;
        margin[t] = Double.POSITIVE_INFINITY;
      } else {
        int g = groupOf(layer, vision[t]);
        MoeRouting r =
            MoeRouting.route(
                Math64.matVec(matrix(WeightNames.gate(layer, g)), hn),
                matrix(WeightNames.correctionBias(layer))[g],
                cfg.topK(),
                cfg.moeNormMin());
        mlp = new double[cfg.hidden()];
        for (int j = 0; j < r.experts().length; j++) {
          double[] y = expert(layer, g, r.experts()[j], hn);
          for (int d = 0; d < mlp.length; d++) {
            mlp[d] += r.weights()[j] * y[d];
          }
        }
        if (cfg.numSharedExperts() > 0) {
          mlp =
              Math64.add(
                  mlp,
                  Math64.swiglu(
                      matrix(WeightNames.sharedExpert(layer, "gate_proj")),
                      matrix(WeightNames.sharedExpert(layer, "up_proj")),
                      matrix(WeightNames.sharedExpert(layer, "down_proj")),
                      hn));
        }
        expertIds[t] = r.experts();
        expertWeights[t] = r.weights();
        group[t] = g;
        margin[t] = r.margin();
      }
      out[t] = Math64.add(h, mlp);
    }
    return new LayerTrace(
        out, attnResidual, mlpInput, expertIds, expertWeights, group, margin, newK, newV);
  }

  /** 1-D RoPE for a text position (t = h = w), the 3-D form otherwise. */
  private double[] rope(double[] head, int[] thw) {
    if (thw[0] == thw[1] && thw[1] == thw[2]) {
      return Math64.ropeInterleaved(head, thw[0], cfg.ropeTheta());
    }
    return Math64.ropeInterleaved3d(head, thw, cfg.ropeTheta(), cfg.freqAllocation());
  }

  /** Routed expert {@code e} of group {@code g}: a SwiGLU MLP. */
  double[] expert(int layer, int g, int e, double[] x) {
    return Math64.swiglu(
        matrix(WeightNames.expert(cfg, layer, g, e, "gate_proj")),
        matrix(WeightNames.expert(cfg, layer, g, e, "up_proj")),
        matrix(WeightNames.expert(cfg, layer, g, e, "down_proj")),
        x);
  }

  /** Vision tokens use the vision group where the layer has one; everything else the text group. */
  private int groupOf(int layer, boolean vision) {
    List<Integer> groups = cfg.groupsInLayer(layer);
    if (vision && groups.contains(ExpertGroup.VISION)) {
      return ExpertGroup.VISION;
    }
    if (!groups.contains(ExpertGroup.TEXT)) {
      throw new IllegalStateException("MoE layer " + layer + " has no text expert group");
    }
    return ExpertGroup.TEXT;
  }

  // ---------------------------------------------------------------- whole model

  /**
   * Runs all layers for new tokens (appending to the cache); returns the logits of every new token.
   */
  public double[][] forward(int[] tokens, boolean[] vision, KvCache64 cache) {
    double[][] rows = new double[tokens.length][];
    for (int t = 0; t < tokens.length; t++) {
      rows[t] = embed(tokens[t]);
    }
    return forwardEmbeddings(rows, vision, cache);
  }

  /** Same as {@link #forward} with given input embeddings (rows) instead of token ids. */
  public double[][] forwardEmbeddings(double[][] rows, boolean[] vision, KvCache64 cache) {
    return forwardAt(rows, vision, cache, 0);
  }

  /**
   * All layers for given input rows at given 3-D positions ({@code [t][3]}); returns the logits of
   * every row.
   */
  public double[][] forwardEmbeddings3d(
      double[][] rows, int[][] positions, boolean[] vision, KvCache64 cache) {
    double[][] x = rows;
    for (int l = 0; l < cfg.numLayers(); l++) {
      x = layer3d(l, x, positions, vision, cache).out();
    }
    double[][] logits = new double[x.length][];
    for (int t = 0; t < x.length; t++) {
      logits[t] = logits(x[t]);
    }
    return logits;
  }

  /**
   * {@link #forwardEmbeddings} with every position shifted by {@code positionShift}: RoPE makes
   * attention depend only on relative positions, so the result must not change (a test hook).
   */
  double[][] forwardAt(double[][] rows, boolean[] vision, KvCache64 cache, int positionShift) {
    int start = cache.length();
    for (int l = 0; l < cfg.numLayers(); l++) {
      if (cache.length(l) != start) {
        throw new IllegalStateException(
            "cache layer " + l + " holds " + cache.length(l) + " positions, expected " + start);
      }
    }
    int[] positions = new int[rows.length];
    for (int t = 0; t < rows.length; t++) {
      positions[t] = positionShift + start + t;
    }
    double[][] x = rows;
    for (int l = 0; l < cfg.numLayers(); l++) {
      x = layer(l, x, positions, vision, cache).out();
    }
    double[][] logits = new double[x.length][];
    for (int t = 0; t < x.length; t++) {
      logits[t] = logits(x[t]);
    }
    return logits;
  }

  /**
   * Greedy decoding with a KV cache: runs the prompt, then feeds back one token at a time. Returns
   * the {@code maxNew} generated tokens (argmax, ties → lowest id; no stop at EOS).
   */
  public int[] greedy(int[] prompt, int maxNew) {
    requirePrompt(prompt);
    KvCache64 cache = new KvCache64(cfg);
    int[] out = new int[maxNew];
    if (maxNew == 0) {
      return out;
    }
    double[][] logits = forward(prompt, new boolean[prompt.length], cache);
    out[0] = Math64.argmax(logits[logits.length - 1]);
    for (int i = 1; i < maxNew; i++) {
      logits = forward(new int[] {out[i - 1]}, new boolean[1], cache);
      out[i] = Math64.argmax(logits[0]);
    }
    return out;
  }

  /** Greedy decoding that recomputes the whole sequence at every step (no cache reuse). */
  public int[] greedyNoCache(int[] prompt, int maxNew) {
    requirePrompt(prompt);
    int[] seq = Arrays.copyOf(prompt, prompt.length + maxNew);
    for (int i = 0; i < maxNew; i++) {
      int len = prompt.length + i;
      double[][] logits = forward(Arrays.copyOf(seq, len), new boolean[len], new KvCache64(cfg));
      seq[len] = Math64.argmax(logits[len - 1]);
    }
    return Arrays.copyOfRange(seq, prompt.length, seq.length);
  }

  private static void requirePrompt(int[] prompt) {
    if (prompt.length == 0) {
      throw new IllegalArgumentException("prompt must hold at least one token");
    }
  }

  // ---------------------------------------------------------------- weights, widened to double

  private double[][] matrix(String name) {
    return matrices.computeIfAbsent(
        name,
        n -> {
          FloatTensor t = tensor(n, 2);
          int rows = (int) t.shape()[0];
          int cols = (int) t.shape()[1];
          double[][] m = new double[rows][cols];
          for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
              m[r][c] = t.get(r * cols + c);
            }
          }
          return m;
        });
  }

  private double[] vector(String name) {
    return vectors.computeIfAbsent(
        name,
        n -> {
          FloatTensor t = tensor(n, 1);
          double[] v = new double[(int) t.shape()[0]];
          for (int i = 0; i < v.length; i++) {
            v[i] = t.get(i);
          }
          return v;
        });
  }

  private FloatTensor tensor(String name, int rank) {
    FloatTensor t =
        weights
            .find(name)
            .orElseThrow(
                () -> new IllegalArgumentException(weights.describe() + " has no tensor " + name));
    long[] expected = expectedShapes.get(name);
    if (expected == null || expected.length != rank || !t.hasShape(expected)) {
      throw new IllegalArgumentException(
          "tensor "
              + name
              + " from "
              + weights.describe()
              + " has shape "
              + Arrays.toString(t.shape())
              + ", expected "
              + Arrays.toString(expected));
    }
    return t;
  }
}
