package dev.pdserve.model.reference;

import java.util.Arrays;

/**
 * The ERNIE-4.5 MoE gate decision for one token within one expert group.
 *
 * @param experts chosen expert indices (within the group), highest score first
 * @param weights the chosen softmax probabilities, renormalised by {@code max(sum, normMin)}
 * @param margin {@code score_k − score_{k+1}} in descending score order ({@code +inf} if the group
 *     has exactly k experts): how far the choice is from flipping
 */
record MoeRouting(int[] experts, double[] weights, double margin) {

  /**
   * {@code p = softmax(logits)}; {@code score = p + bias}; the top-k experts by score (ties → lower
   * index); weights are the chosen {@code p} (not the score) over {@code max(Σ chosen p, normMin)}.
   */
  static MoeRouting route(double[] logits, double[] bias, int k, double normMin) {
    int n = logits.length;
    if (bias.length < n) {
      throw new IllegalArgumentException(
          "correction bias has " + bias.length + " entries, gate has " + n + " experts");
    }
    double[] p = Math64.softmax(logits);
    double[] score = new double[n];
    for (int e = 0; e < n; e++) {
      score[e] = p[e] + bias[e];
    }
    // Sort expert indices by descending score; a stable sort keeps lower indices first on ties.
    Integer[] order = new Integer[n];
    for (int e = 0; e < n; e++) {
      order[e] = e;
    }
    Arrays.sort(order, (a, b) -> Double.compare(score[b], score[a]));

    int[] experts = new int[k];
    double sum = 0;
    for (int j = 0; j < k; j++) {
      experts[j] = order[j];
      sum += p[order[j]];
    }
    double denom = Math.max(sum, normMin);
    double[] weights = new double[k];
    for (int j = 0; j < k; j++) {
      weights[j] = p[experts[j]] / denom;
    }
    double margin = k < n ? score[order[k - 1]] - score[order[k]] : Double.POSITIVE_INFINITY;
    return new MoeRouting(experts, weights, margin);
  }
}
