package dev.pdserve.model.weights;

import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.QuantizedBuffers;
import dev.pdserve.model.quant.StoredQuantization;
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

  /**
   * How the source stores its quantized matrices when it was written pre-quantized ({@code pdserve
   * model convert --quantize}): those matrices are then only there as codes, scales and zero points
   * ({@link #storedQuantized}), not through {@link #find}. Empty (the default): every tensor is a
   * float tensor.
   */
  default Optional<StoredQuantization> storedQuantization() {
    return Optional.empty();
  }

  /**
   * The stored parts of matrix {@code base} in {@code f}, views of the source's memory (no copy),
   * or empty when the source does not store it so.
   *
   * @throws IllegalArgumentException if {@code base} is stored in another format
   */
  default Optional<QuantizedBuffers> storedQuantized(String base, QuantFormat f) {
    return Optional.empty();
  }

  /** Every tensor name this source can provide through {@link #find}. */
  Set<String> names();

  /** A short description for logs and errors ("dummy(seed=42)", "/models/x"). */
  String describe();

  @Override
  default void close() {}
}
