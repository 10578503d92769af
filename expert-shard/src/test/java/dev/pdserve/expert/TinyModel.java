package dev.pdserve.expert;

import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.engine.RoutedBatch;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;

/** The tiny preset and random routed batches shaped like the gate's output. */
final class TinyModel {
  static final ModelConfig CFG = ModelPresets.get("tiny");
  static final long SEED = 42;

  private TinyModel() {}

  static List<Integer> moeLayers() {
    return IntStream.range(0, CFG.numLayers())
        .filter(l -> CFG.layerKind(l) == LayerKind.MOE)
        .boxed()
        .toList();
  }

  /**
   * {@code rows} rows of layer {@code layer}: Gaussian hidden states, text or vision rows at
   * random, k distinct experts of the row's group, weights summing to 1. {@code onlyBelow} limits
   * expert ids (to aim a batch at one shard); pass the group size for no limit.
   */
  static RoutedBatch randomBatch(Random rnd, int layer, int rows, int onlyBelow) {
    int h = CFG.hidden();
    int k = CFG.topK();
    float[] hn = new float[rows * h];
    for (int i = 0; i < hn.length; i++) {
      hn[i] = (float) rnd.nextGaussian();
    }
    List<Integer> groups = CFG.groupsInLayer(layer);
    int[] group = new int[rows];
    long[] ids = new long[rows * k];
    float[] w = new float[rows * k];
    for (int r = 0; r < rows; r++) {
      group[r] = groups.get(rnd.nextInt(groups.size()));
      int n = Math.min(onlyBelow, CFG.expertGroups().get(group[r]).numExperts());
      List<Integer> pick = new ArrayList<>();
      for (int e = 0; e < n; e++) {
        pick.add(e);
      }
      Collections.shuffle(pick, rnd);
      float sum = 0;
      for (int j = 0; j < k; j++) {
        ids[r * k + j] = pick.get(j);
        w[r * k + j] = 0.05f + rnd.nextFloat();
        sum += w[r * k + j];
      }
      for (int j = 0; j < k; j++) {
        w[r * k + j] /= sum;
      }
    }
    return new RoutedBatch(layer, rows, h, k, hn, group, ids, w);
  }

  /** First index where two float arrays differ bit for bit, with both values; null if identical. */
  static String firstDifference(float[] expected, float[] actual, int hidden) {
    if (expected.length != actual.length) {
      return "lengths differ: " + expected.length + " vs " + actual.length;
    }
    for (int i = 0; i < expected.length; i++) {
      if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
        return "row "
            + (i / hidden)
            + " dim "
            + (i % hidden)
            + ": local "
            + expected[i]
            + " vs remote "
            + actual[i];
      }
    }
    return null;
  }
}
