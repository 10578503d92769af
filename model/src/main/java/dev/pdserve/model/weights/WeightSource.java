package dev.pdserve.model.weights;

import java.util.Optional;
import java.util.Set;

/**
 * Where model weights come from: seeded dummy weights, or a checkpoint on disk. Tensors are
 * addressed by their canonical names ({@link WeightNames}), which are the published ERNIE PT
 * checkpoint names, with every linear weight (gates included) in {@code [out, in]} layout.
 */
public interface WeightSource extends AutoCloseable {
  /** The tensor, or empty when the source has none of that name. */
  Optional<FloatTensor> find(String name);

  /**
   * The shape of {@code name}, or empty when the source has none of that name. Sources that can
   * answer without producing the data (a checkpoint header) override this.
   */
  default Optional<long[]> shape(String name) {
    return find(name).map(FloatTensor::shape);
  }

  /** Every tensor name this source can provide. */
  Set<String> names();

  /** A short description for logs and errors ("dummy(seed=42)", "/models/x"). */
  String describe();

  @Override
  default void close() {}
}
