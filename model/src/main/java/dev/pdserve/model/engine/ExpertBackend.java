package dev.pdserve.model.engine;

/**
 * Computes the routed-expert part of an MoE layer: for each row r, {@code Σ_j w[r,j] ·
 * expert_{group(r), id[r,j]}(hn[r])}. Implementations: all experts in this process ({@link
 * LocalExperts}), or experts spread over shards (the cluster's dispatcher). Every implementation
 * must give the same floats: each weighted expert output is a float, summed in double and rounded
 * once, so it does not matter which process computed which expert.
 */
public interface ExpertBackend {
  float[] routed(RoutedBatch batch);
}
