package dev.pdserve.benchmarks;

import dev.pdserve.model.engine.RoutedBatch;
import java.util.Arrays;

/**
 * Router values that make ONNX Runtime's MoE / QMoE operators pick exactly the engine's experts
 * ({@link FusedExperts}). Both operators take the top k of each row's values and weight them by a
 * softmax (QMoE over the k chosen values, MoE over the whole row); a row of {@code -∞} except at
 * the chosen experts gives both the same choice and the same weights.
 *
 * <ul>
 *   <li>{@link #weighted}: one row per token, {@code log(w)} at its k experts. The softmax gives
 *       back {@code w} (the engine's weights already sum to 1) to a few ulp, and the operator sums
 *       the k weighted outputs itself, in float, in its own order.
 *   <li>{@link #expanded}: one row per (token, expert) pair, value 0 at that expert: the softmax is
 *       exactly 1 and the other k−1 picks exactly 0 (dropped), so each output row is that expert's
 *       output alone; {@link Expanded#accumulate} weights and sums them as {@code
 *       ExpertCompute.accumulate} does (float product, double sum). An expert that gets a single
 *       row here gets a second copy of it, as the engine pads its expert calls to two rows.
 * </ul>
 */
final class FusedRouting {
  private FusedRouting() {}

  /** {@code [rows, experts]}: {@code log(w)} at each row's experts, {@code -∞} elsewhere. */
  static float[] weighted(RoutedBatch b, int experts) {
    float[] r = new float[b.rows() * experts];
    Arrays.fill(r, Float.NEGATIVE_INFINITY);
    int k = b.topK();
    for (int row = 0; row < b.rows(); row++) {
      for (int j = 0; j < k; j++) {
        int e = (int) b.expertIds()[row * k + j];
        r[row * experts + e] = (float) Math.log(b.weights()[row * k + j]);
      }
    }
    return r;
  }

  /** The rows of {@code b} as one row per (row, slot) pair (see the class comment). */
  static Expanded expanded(RoutedBatch b, int experts) {
    int k = b.topK();
    int h = b.hidden();
    int[] count = new int[experts];
    int pairs = b.rows() * k;
    for (int i = 0; i < pairs; i++) {
      count[(int) b.expertIds()[i]]++;
    }
    int extra = 0;
    for (int c : count) {
      extra += c == 1 ? 1 : 0;
    }
    int rows = pairs + extra;
    float[] x = new float[rows * h];
    float[] router = new float[rows * experts];
    Arrays.fill(router, Float.NEGATIVE_INFINITY);
    int pad = pairs;
    for (int i = 0; i < pairs; i++) {
      int src = i / k;
      int e = (int) b.expertIds()[i];
      System.arraycopy(b.hn(), src * h, x, i * h, h);
      router[i * experts + e] = 0f;
      if (count[e] == 1) {
        System.arraycopy(b.hn(), src * h, x, pad * h, h);
        router[pad * experts + e] = 0f;
        pad++;
      }
    }
    return new Expanded(b, rows, x, router);
  }

  /**
   * A batch as (row, slot) pairs: pair {@code i} is row {@code i / k}, slot {@code i % k}; rows
   * from {@code rows() - padding} on are copies whose outputs are not used.
   */
  record Expanded(RoutedBatch batch, int rows, float[] x, float[] router) {
    /**
     * Adds {@code (double)(w · y)} of every pair into {@code acc[row·H + d]}, each row's experts in
     * ascending order, as {@code ExpertCompute.accumulate} adds them.
     */
    void accumulate(float[] y, double[] acc) {
      int k = batch.topK();
      int h = batch.hidden();
      Integer[] slots = new Integer[k];
      for (int row = 0; row < batch.rows(); row++) {
        int base = row * k;
        for (int j = 0; j < k; j++) {
          slots[j] = j;
        }
        Arrays.sort(
            slots,
            (a, c) -> Long.compare(batch.expertIds()[base + a], batch.expertIds()[base + c]));
        for (int j : slots) {
          float w = batch.weights()[base + j];
          int yo = (base + j) * h;
          int ao = row * h;
          for (int d = 0; d < h; d++) {
            acc[ao + d] += (double) (w * y[yo + d]);
          }
        }
      }
    }
  }
}
