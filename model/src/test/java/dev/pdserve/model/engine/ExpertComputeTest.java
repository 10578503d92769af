package dev.pdserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelWeights;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class ExpertComputeTest {
  static ModelConfig cfg;
  static ModelWeights weights;
  static ExpertCompute all;

  @BeforeAll
  static void setUp() {
    cfg = ModelPresets.get("tiny");
    weights = new ModelWeights(cfg, new DummyWeights(cfg, 42), OrtRuntime.shared());
    all = new ExpertCompute(cfg, weights, OrtRuntime.shared(), ExpertCompute.HostedExperts.ALL);
  }

  @AfterAll
  static void tearDown() {
    all.close();
    weights.close();
  }

  static RoutedBatch batch(long seed, int rows) {
    Random rnd = new Random(seed);
    int h = cfg.hidden();
    int k = cfg.topK();
    float[] hn = new float[rows * h];
    for (int i = 0; i < hn.length; i++) {
      hn[i] = (float) rnd.nextGaussian();
    }
    int[] group = new int[rows];
    long[] ids = new long[rows * k];
    float[] w = new float[rows * k];
    for (int r = 0; r < rows; r++) {
      group[r] = rnd.nextInt(2);
      int n = cfg.expertGroups().get(group[r]).numExperts();
      List<Integer> pick = new ArrayList<>();
      for (int e = 0; e < n; e++) pick.add(e);
      Collections.shuffle(pick, rnd);
      for (int j = 0; j < k; j++) {
        ids[r * k + j] = pick.get(j);
        w[r * k + j] = rnd.nextFloat();
      }
    }
    return new RoutedBatch(1, rows, h, k, hn, group, ids, w);
  }

  @Test
  void slotsWithoutAnExpertContributeNothingAndSplitsAddUp() {
    RoutedBatch b = batch(7, 13);
    double[] whole = new double[b.hn().length];
    int runWhole = all.accumulate(b, whole);

    long[] low = b.expertIds().clone();
    long[] high = b.expertIds().clone();
    for (int i = 0; i < low.length; i++) {
      if (low[i] < 32) {
        high[i] = ExpertCompute.NO_EXPERT;
      } else {
        low[i] = ExpertCompute.NO_EXPERT;
      }
    }
    double[] a = new double[whole.length];
    double[] c = new double[whole.length];
    int runLow =
        all.accumulate(
            new RoutedBatch(
                b.layer(), b.rows(), b.hidden(), b.topK(), b.hn(), b.group(), low, b.weights()),
            a);
    int runHigh =
        all.accumulate(
            new RoutedBatch(
                b.layer(), b.rows(), b.hidden(), b.topK(), b.hn(), b.group(), high, b.weights()),
            c);
    assertEquals(runWhole, runLow + runHigh, "experts run");
    for (int i = 0; i < whole.length; i++) {
      assertEquals((float) whole[i], (float) (a[i] + c[i]), "element " + i);
    }

    long[] none = new long[b.expertIds().length];
    Arrays.fill(none, ExpertCompute.NO_EXPERT);
    double[] z = new double[whole.length];
    assertEquals(
        0,
        all.accumulate(
            new RoutedBatch(
                b.layer(), b.rows(), b.hidden(), b.topK(), b.hn(), b.group(), none, b.weights()),
            z));
    for (double v : z) {
      assertEquals(0.0, v);
    }
  }
}
