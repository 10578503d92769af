package dev.pdserve.model.reference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.engine.ContiguousKv;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.LocalExperts;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.engine.SequenceStep;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelWeights;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * DESIGN.md invariant 2: the ONNX graphs run by ONNX Runtime compute the model. Each decoder layer
 * (dense and MoE, text and vision tokens) and the whole model are compared against {@link
 * Float64Ernie}, an independent float64 implementation, on random inputs.
 */
class GraphsMatchFloat64Test {
  static final double TOLERANCE = 1e-4;

  /** Routing decisions closer than this may legitimately differ between fp32 and fp64. */
  static final double MIN_MARGIN = 1e-5;

  static ModelConfig cfg;
  static DummyWeights source;
  static ModelWeights weights;
  static ModelRunner runner;
  static ExpertCompute experts;
  static LocalExperts local;
  static Float64Ernie f64;

  @BeforeAll
  static void setUp() {
    cfg = ModelPresets.get("tiny");
    source = new DummyWeights(cfg, 3);
    OrtRuntime rt = OrtRuntime.shared();
    weights = new ModelWeights(cfg, source, rt);
    runner = new ModelRunner(cfg, weights, rt);
    experts = new ExpertCompute(cfg, weights, rt, ExpertCompute.HostedExperts.ALL);
    local = new LocalExperts(experts);
    f64 = new Float64Ernie(cfg, source);
  }

  @AfterAll
  static void tearDown() {
    experts.close();
    runner.close();
    weights.close();
  }

  static double[][] randomRows(Random r, int n, double scale) {
    double[][] x = new double[n][cfg.hidden()];
    for (double[] row : x) {
      for (int d = 0; d < row.length; d++) {
        row[d] =
            (float)
                (scale * r.nextGaussian()); // representable in fp32: both sides see the same input
      }
    }
    return x;
  }

  static float[] flat(double[][] rows) {
    float[] out = new float[rows.length * rows[0].length];
    for (int i = 0; i < rows.length; i++) {
      for (int d = 0; d < rows[i].length; d++) {
        out[i * rows[i].length + d] = (float) rows[i][d];
      }
    }
    return out;
  }

  static boolean[] visionFlags(Random r, int n, boolean anyVision) {
    boolean[] v = new boolean[n];
    for (int i = 0; i < n; i++) {
      v[i] = anyVision && r.nextBoolean();
    }
    return v;
  }

  /** Max over rows of ‖a_row − b_row‖∞ / ‖b_row‖∞. */
  static double relativeError(float[] a, double[][] b) {
    double worst = 0;
    int h = b[0].length;
    for (int i = 0; i < b.length; i++) {
      double diff = 0;
      double norm = 1e-12;
      for (int d = 0; d < h; d++) {
        diff = Math.max(diff, Math.abs(a[i * h + d] - b[i][d]));
        norm = Math.max(norm, Math.abs(b[i][d]));
      }
      worst = Math.max(worst, diff / norm);
    }
    return worst;
  }

  static void assertClearRouting(LayerTrace t, String what) {
    if (t.routingMargin() == null) {
      return;
    }
    for (int i = 0; i < t.routingMargin().length; i++) {
      assertTrue(
          t.routingMargin()[i] > MIN_MARGIN,
          what
              + ": token "
              + i
              + " has a near-tie in expert choice (margin "
              + t.routingMargin()[i]
              + "); pick another seed so fp32 and fp64 must agree on the experts");
    }
  }

  static int[] zeros(int n) {
    return new int[n];
  }

  @ParameterizedTest(name = "layer {0}")
  @ValueSource(ints = {0, 1, 2, 3})
  void prefillOfOneLayerMatches(int layer) {
    Random r = new Random(100 + layer);
    int t = 29;
    double[][] x = randomRows(r, t, 0.5);
    boolean moe = cfg.layerKind(layer) == LayerKind.MOE;
    boolean[] vision = visionFlags(r, t, moe);
    int[] positions = new int[t];
    for (int i = 0; i < t; i++) {
      positions[i] = i;
    }
    KvCache64 cache = new KvCache64(cfg);
    LayerTrace ref = f64.layer(layer, x, positions, vision, cache);
    assertClearRouting(ref, "layer " + layer);

    ContiguousKv kv = new ContiguousKv(cfg, t);
    float[] out =
        runner.runLayer(
            layer, List.of(new SequenceStep(zeros(t), vision, null, kv, false)), flat(x), local);
    double err = relativeError(out, ref.out());
    assertTrue(
        err < TOLERANCE, "layer " + layer + " prefill output differs from float64 by " + err);
    assertKvMatches(kv, layer, ref, 0, t);
  }

  @ParameterizedTest(name = "layer {0}")
  @ValueSource(ints = {0, 1, 3})
  void batchedDecodeOfOneLayerMatches(int layer) {
    Random r = new Random(200 + layer);
    int[] pasts = {5, 17, 30};
    boolean moe = cfg.layerKind(layer) == LayerKind.MOE;
    List<SequenceStep> steps = new ArrayList<>();
    List<KvCache64> refCaches = new ArrayList<>();
    double[][] newRows = new double[pasts.length][];
    boolean[] newVision = new boolean[pasts.length];
    for (int s = 0; s < pasts.length; s++) {
      // Build each sequence's past of this layer with both implementations from the same rows.
      double[][] past = randomRows(r, pasts[s], 0.5);
      boolean[] pv = visionFlags(r, pasts[s], moe);
      int[] pos = new int[pasts[s]];
      for (int i = 0; i < pos.length; i++) {
        pos[i] = i;
      }
      KvCache64 c64 = new KvCache64(cfg);
      f64.layer(layer, past, pos, pv, c64);
      ContiguousKv kv = new ContiguousKv(cfg, 64);
      runner.runLayer(
          layer,
          List.of(new SequenceStep(zeros(pasts[s]), pv, null, kv, false)),
          flat(past),
          local);
      advanceAllLayers(kv, pasts[s]);
      refCaches.add(c64);
      newRows[s] = randomRows(r, 1, 0.5)[0];
      newVision[s] = moe && s == 1;
      steps.add(new SequenceStep(zeros(1), new boolean[] {newVision[s]}, null, kv, false));
    }
    float[] out = runner.runLayer(layer, steps, flat(newRows), local);
    for (int s = 0; s < pasts.length; s++) {
      LayerTrace ref =
          f64.layer(
              layer,
              new double[][] {newRows[s]},
              new int[] {pasts[s]},
              new boolean[] {newVision[s]},
              refCaches.get(s));
      assertClearRouting(ref, "decode layer " + layer + " seq " + s);
      float[] mine = Arrays.copyOfRange(out, s * cfg.hidden(), (s + 1) * cfg.hidden());
      double err = relativeError(mine, ref.out());
      assertTrue(
          err < TOLERANCE,
          "layer " + layer + " batched decode of sequence " + s + " differs by " + err);
    }
  }

  /** runLayer does not advance caches; a one-layer test marks the positions stored itself. */
  private static void advanceAllLayers(ContiguousKv kv, int n) {
    kv.advance(n);
  }

  private static void assertKvMatches(ContiguousKv kv, int layer, LayerTrace ref, int from, int n) {
    int kvh = cfg.numKvHeads();
    int hd = cfg.headDim();
    kv.advance(n);
    float[] k = new float[kvh * n * hd];
    float[] v = new float[kvh * n * hd];
    kv.read(layer, k, v, 0, n);
    double worst = 0;
    for (int i = 0; i < n; i++) {
      for (int h = 0; h < kvh; h++) {
        for (int d = 0; d < hd; d++) {
          double rk = ref.newK()[i][h * hd + d];
          double rv = ref.newV()[i][h * hd + d];
          worst = Math.max(worst, Math.abs(k[(h * n + i) * hd + d] - rk) / (1 + Math.abs(rk)));
          worst = Math.max(worst, Math.abs(v[(h * n + i) * hd + d] - rv) / (1 + Math.abs(rv)));
        }
      }
    }
    assertTrue(worst < TOLERANCE, "layer " + layer + " cached K/V differ from float64 by " + worst);
  }

  @Test
  void wholeModelLogitsAndGreedyTokensMatch() {
    Random r = new Random(7);
    int[] prompt = new int[21];
    for (int i = 0; i < prompt.length; i++) {
      prompt[i] = r.nextInt(cfg.vocabSize());
    }
    KvCache64 c64 = new KvCache64(cfg);
    double[][] refLogits = f64.forward(prompt, new boolean[prompt.length], c64);
    ContiguousKv kv = new ContiguousKv(cfg, 64);
    float[] logits = runner.forward(List.of(SequenceStep.text(prompt, kv, true)), local)[0];
    double[] last = refLogits[refLogits.length - 1];
    double err = relativeError(logits, new double[][] {last});
    assertTrue(err < TOLERANCE, "prompt logits differ from float64 by " + err);

    int[] refTokens = f64.greedy(prompt, 12);
    List<Integer> mine = new ArrayList<>();
    float[] l = logits;
    for (int i = 0; i < 12; i++) {
      int next = argmax(l);
      mine.add(next);
      l = runner.forward(List.of(SequenceStep.text(new int[] {next}, kv, true)), local)[0];
    }
    assertEquals(12, refTokens.length);
    assertArrayEquals(
        refTokens,
        mine.stream().mapToInt(Integer::intValue).toArray(),
        "greedy tokens differ from float64");
  }

  static int argmax(float[] l) {
    int best = 0;
    for (int i = 1; i < l.length; i++) {
      if (l[i] > l[best]) {
        best = i;
      }
    }
    return best;
  }
}
