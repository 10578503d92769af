package dev.pdserve.model.reference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.FloatTensor;
import dev.pdserve.model.weights.WeightNames;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class Float64ErnieTest {
  private static final ModelConfig CFG = ModelPresets.get("tiny");
  private static final Float64Ernie MODEL = new Float64Ernie(CFG, new DummyWeights(CFG, 7));

  @Test
  void greedyWithCacheMatchesRecomputingEveryStep() {
    int[][] prompts = {{1}, {1, 72, 101, 108}, {1, 200, 17, 33, 5, 250, 9}};
    int[] lengths = {5, 4, 3};
    for (int i = 0; i < prompts.length; i++) {
      int[] cached = MODEL.greedy(prompts[i], lengths[i]);
      int[] recomputed = MODEL.greedyNoCache(prompts[i], lengths[i]);
      assertEquals(lengths[i], cached.length);
      assertArrayEquals(
          recomputed, cached, "greedy tokens for prompt " + Arrays.toString(prompts[i]));
    }
  }

  @Test
  void forwardInChunksEqualsForwardInOneCall() {
    int[] tokens = {1, 40, 41, 42, 100, 7, 8, 9, 280, 3};
    boolean[] vision = {false, false, true, true, true, false, false, true, false, false};
    double[][] whole = MODEL.forward(tokens, vision, new KvCache64(CFG));

    KvCache64 cache = new KvCache64(CFG);
    int[] cuts = {0, 3, 4, 8, 10};
    for (int c = 0; c + 1 < cuts.length; c++) {
      int from = cuts[c];
      int to = cuts[c + 1];
      double[][] part =
          MODEL.forward(
              Arrays.copyOfRange(tokens, from, to), Arrays.copyOfRange(vision, from, to), cache);
      for (int t = from; t < to; t++) {
        assertArrayEquals(
            whole[t],
            part[t - from],
            1e-12,
            "logits of token " + t + " (chunk " + from + ".." + to + ")");
      }
    }
    assertEquals(tokens.length, cache.length());
  }

  @Test
  void routingPicksDistinctExpertsOfTheTokensGroupWithWeightsSummingToOne() {
    int[] tokens = {1, 10, 20, 30, 40, 50, 60, 70};
    boolean[] vision = {false, true, true, false, true, false, true, true};
    KvCache64 cache = new KvCache64(CFG);
    int[] positions = new int[tokens.length];
    double[][] x = new double[tokens.length][];
    for (int t = 0; t < tokens.length; t++) {
      positions[t] = t;
      x[t] = MODEL.embed(tokens[t]);
    }
    for (int l = 0; l < CFG.numLayers(); l++) {
      LayerTrace tr = MODEL.layer(l, x, positions, vision, cache);
      for (int t = 0; t < tokens.length; t++) {
        if (CFG.layerKind(l) == LayerKind.DENSE) {
          assertEquals(-1, tr.group()[t]);
          assertNull(tr.expertIds()[t]);
          assertEquals(Double.POSITIVE_INFINITY, tr.routingMargin()[t]);
          continue;
        }
        String where = "layer " + l + " token " + t;
        int expectedGroup = vision[t] ? ExpertGroup.VISION : ExpertGroup.TEXT;
        assertEquals(expectedGroup, tr.group()[t], where + " group");
        int experts = CFG.expertGroups().get(expectedGroup).numExperts();
        int[] ids = tr.expertIds()[t];
        double[] w = tr.expertWeights()[t];
        assertEquals(CFG.topK(), ids.length, where);
        Set<Integer> distinct = new HashSet<>();
        double sum = 0;
        for (int j = 0; j < ids.length; j++) {
          assertTrue(
              ids[j] >= 0 && ids[j] < experts, where + " expert " + ids[j] + " outside its group");
          assertTrue(distinct.add(ids[j]), where + " expert " + ids[j] + " chosen twice");
          assertTrue(w[j] > 0, where + " weight " + w[j]);
          sum += w[j];
        }
        assertEquals(1.0, sum, 1e-12, where + " weights " + Arrays.toString(w));
        assertTrue(tr.routingMargin()[t] >= 0, where + " margin " + tr.routingMargin()[t]);
      }
      x = tr.out();
    }
  }

  @Test
  void gateUsesBiasToChooseButProbabilitiesToWeigh() {
    // p = [0.1, 0.2, 0.3, 0.4]; the bias lifts expert 0 to the top, the weights stay p-based.
    double[] logits = {Math.log(1), Math.log(2), Math.log(3), Math.log(4)};
    MoeRouting r = MoeRouting.route(logits, new double[] {0.5, 0, 0, 0}, 2, 1e-12);
    assertArrayEquals(new int[] {0, 3}, r.experts());
    assertArrayEquals(new double[] {0.2, 0.8}, r.weights(), 1e-12);
    assertEquals(0.4 - 0.3, r.margin(), 1e-12); // sorted scores 0.6, 0.4 | 0.3, 0.2

    // Equal scores: the lower index wins.
    MoeRouting tie = MoeRouting.route(new double[] {0, 0, 0}, new double[] {0, 0, 0}, 1, 1e-12);
    assertArrayEquals(new int[] {0}, tie.experts());
    assertEquals(0.0, tie.margin());
    assertArrayEquals(new double[] {1.0}, tie.weights(), 1e-15);
  }

  @Test
  void layerOutputDependsOnlyOnRelativePositions() {
    int[] tokens = {1, 5, 99, 150, 6, 44};
    boolean[] vision = {false, false, true, true, false, false};
    int[] positions = new int[tokens.length];
    int[] shifted = new int[tokens.length];
    double[][] x = new double[tokens.length][];
    for (int t = 0; t < tokens.length; t++) {
      positions[t] = t;
      shifted[t] = t + 1234;
      x[t] = MODEL.embed(tokens[t]);
    }
    for (int l = 0; l < 2; l++) { // the dense layer and the first MoE layer
      LayerTrace a = MODEL.layer(l, x, positions, vision, new KvCache64(CFG));
      LayerTrace b = MODEL.layer(l, x, shifted, vision, new KvCache64(CFG));
      for (int t = 0; t < tokens.length; t++) {
        assertArrayEquals(a.out()[t], b.out()[t], 1e-9, "layer " + l + " token " + t);
      }
      if (tokens.length > 1) {
        assertNotEquals(
            a.newK()[1][0], b.newK()[1][0], "keys must be rotated by absolute position");
      }
    }

    // The whole model, with a cache carried across two calls.
    KvCache64 plain = new KvCache64(CFG);
    KvCache64 moved = new KvCache64(CFG);
    double[][] rows = new double[tokens.length][];
    for (int t = 0; t < tokens.length; t++) {
      rows[t] = MODEL.embed(tokens[t]);
    }
    double[][] p1 =
        MODEL.forwardAt(Arrays.copyOfRange(rows, 0, 4), Arrays.copyOfRange(vision, 0, 4), plain, 0);
    double[][] m1 =
        MODEL.forwardAt(
            Arrays.copyOfRange(rows, 0, 4), Arrays.copyOfRange(vision, 0, 4), moved, 777);
    double[][] p2 =
        MODEL.forwardAt(Arrays.copyOfRange(rows, 4, 6), Arrays.copyOfRange(vision, 4, 6), plain, 0);
    double[][] m2 =
        MODEL.forwardAt(
            Arrays.copyOfRange(rows, 4, 6), Arrays.copyOfRange(vision, 4, 6), moved, 777);
    for (int t = 0; t < 4; t++) {
      assertArrayEquals(p1[t], m1[t], 1e-9, "logits of token " + t);
    }
    for (int t = 0; t < 2; t++) {
      assertArrayEquals(p2[t], m2[t], 1e-9, "logits of token " + (4 + t));
    }
  }

  @Test
  void rmsNormAndInterleavedRopeMatchHandComputedValues() {
    // mean(x²) = (9 + 16) / 2 = 12.5
    double[] n = Math64.rmsNorm(new double[] {3, 4}, new double[] {1, 2}, 0.5);
    double r = Math.sqrt(13.0);
    assertArrayEquals(new double[] {3 / r, 8 / r}, n, 1e-15);

    // headDim 4, theta 100: inverse frequencies 1 and 0.1; position 2 gives angles 2 and 0.2.
    // Pairs are (x0, x1) and (x2, x3), not the half-split (x0, x2) and (x1, x3).
    double[] y = Math64.ropeInterleaved(new double[] {1, 0, 0, 1}, 2, 100);
    assertArrayEquals(
        new double[] {Math.cos(2), Math.sin(2), -Math.sin(0.2), Math.cos(0.2)}, y, 1e-15);
    double[] z = Math64.ropeInterleaved(new double[] {1, 2, 3, 4}, 0, 100);
    assertArrayEquals(new double[] {1, 2, 3, 4}, z, 0.0);

    assertEquals(0.0, Math64.silu(0.0));
    assertEquals(2.0 / (1 + Math.exp(-2.0)), Math64.silu(2.0), 1e-15);
  }

  @Test
  void singleTokenAttentionIsOutputProjectionOfItsKvHeadsValues() {
    // One position: softmax is 1, so Attn(xn) = Wo·concat_h(V[h / (heads/kvHeads)]).
    DummyWeights w = new DummyWeights(CFG, 7);
    double[] x = MODEL.embed(65);
    LayerTrace tr =
        MODEL.layer(0, new double[][] {x}, new int[] {3}, new boolean[1], new KvCache64(CFG));

    double[] xn = Math64.rmsNorm(x, widen(w, WeightNames.inputNorm(0))[0], CFG.rmsNormEps());
    double[] v = Math64.matVec(widen(w, WeightNames.v(0)), xn);
    int hd = CFG.headDim();
    double[] concat = new double[CFG.numHeads() * hd];
    for (int h = 0; h < CFG.numHeads(); h++) {
      System.arraycopy(v, (h / CFG.queryGroup()) * hd, concat, h * hd, hd);
    }
    double[] expected = Math64.add(x, Math64.matVec(widen(w, WeightNames.o(0)), concat));
    assertArrayEquals(expected, tr.attnResidual()[0], 1e-12);
    assertArrayEquals(v, tr.newV()[0], 1e-12);
    assertEquals(CFG.vocabSize(), MODEL.logits(tr.out()[0]).length);
  }

  /** A weight as {@code [rows][cols]} (a 1-D weight as one row). */
  private static double[][] widen(DummyWeights w, String name) {
    FloatTensor t = w.find(name).orElseThrow();
    int cols = (int) t.shape()[t.shape().length - 1];
    int rows = (int) (t.elements() / cols);
    double[][] m = new double[rows][cols];
    for (int i = 0; i < t.elements(); i++) {
      m[i / cols][i % cols] = t.get(i);
    }
    return m;
  }
}
