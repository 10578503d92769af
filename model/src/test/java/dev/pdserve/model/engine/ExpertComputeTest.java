package dev.pdserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.WeightQuantization;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelWeights;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

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

  /** Rows {@code from .. from+rows} of {@code b} as a batch of their own. */
  static RoutedBatch slice(RoutedBatch b, int from, int rows) {
    int h = b.hidden();
    int k = b.topK();
    return new RoutedBatch(
        b.layer(),
        rows,
        h,
        k,
        Arrays.copyOfRange(b.hn(), from * h, (from + rows) * h),
        Arrays.copyOfRange(b.group(), from, from + rows),
        Arrays.copyOfRange(b.expertIds(), from * k, (from + rows) * k),
        Arrays.copyOfRange(b.weights(), from * k, (from + rows) * k));
  }

  @ParameterizedTest
  @EnumSource(
      value = QuantMode.class,
      names = {"NONE", "INT8", "INT4", "INT2_MIXED"})
  void aRowGetsTheSameBitsWhateverBatchItIsIn(QuantMode mode) {
    try (ModelWeights w =
            new ModelWeights(
                cfg, new DummyWeights(cfg, 42), OrtRuntime.shared(), WeightQuantization.of(mode));
        ExpertCompute ec =
            new ExpertCompute(cfg, w, OrtRuntime.shared(), ExpertCompute.HostedExperts.ALL)) {
      RoutedBatch b = batch(11, 24);
      int h = cfg.hidden();
      double[] whole = new double[b.hn().length];
      ec.accumulate(b, whole);
      for (int[] part : new int[][] {{0, 1}, {5, 1}, {3, 8}, {16, 8}}) {
        double[] alone = new double[part[1] * h];
        ec.accumulate(slice(b, part[0], part[1]), alone);
        assertArrayEquals(
            Arrays.copyOfRange(whole, part[0] * h, (part[0] + part[1]) * h),
            alone,
            mode + ": rows " + part[0] + ".." + (part[0] + part[1]) + " alone vs in 24");
      }
    }
  }

  @Test
  void anExpertsSessionIsMadeOnItsFirstUseAndOnlyOnce() {
    try (ExpertCompute ec =
        new ExpertCompute(cfg, weights, OrtRuntime.shared(), ExpertCompute.HostedExperts.ALL)) {
      assertEquals(0, ec.sessionCount(), "nothing runs before the first batch");
      RoutedBatch b = batch(3, 5);
      Set<Long> used = new HashSet<>();
      for (int r = 0; r < b.rows(); r++) {
        for (int j = 0; j < b.topK(); j++) {
          used.add(((long) b.group()[r] << 32) | b.expertIds()[r * b.topK() + j]);
        }
      }
      double[] first = new double[b.hn().length];
      assertEquals(used.size(), ec.accumulate(b, first));
      assertEquals(used.size(), ec.sessionCount(), "one session per expert that ran");
      double[] again = new double[b.hn().length];
      ec.accumulate(b, again);
      assertEquals(used.size(), ec.sessionCount(), "the second run makes none");
      assertArrayEquals(first, again);
      int all = 0;
      for (int l = 0; l < cfg.numLayers(); l++) {
        if (cfg.layerKind(l) == dev.pdserve.model.config.LayerKind.MOE) {
          for (int g : cfg.groupsInLayer(l)) {
            all += cfg.expertGroups().get(g).numExperts();
          }
        }
      }
      assertEquals(all - used.size(), ec.loadAll(), "loadAll makes the rest");
      assertEquals(all, ec.sessionCount());
      ec.close();
      assertEquals(0, ec.sessionCount());
      assertThrows(
          IllegalStateException.class,
          () -> ec.accumulate(batch(4, 3), new double[3 * cfg.hidden()]));
    }
  }
}
