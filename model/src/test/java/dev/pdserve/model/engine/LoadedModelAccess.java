package dev.pdserve.model.engine;

import dev.pdserve.model.weights.WeightSource;

/** Test access: the same model with other weights. */
final class LoadedModelAccess {
  private LoadedModelAccess() {}

  static LoadedModel with(LoadedModel base, WeightSource weights) {
    return LoadedModel.withWeights(base, weights);
  }
}
