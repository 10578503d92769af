package dev.pdserve.model.engine;

import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.quant.WeightQuantization;
import java.util.Objects;

/**
 * How a model is computed and stored, beside which model it is ({@link ModelSpec}): the KV cache's
 * element type and the weights' quantization. Every node of a cluster and the reference engine it
 * is compared with must agree; greedy outputs are equal only between runs of the same numerics.
 *
 * @param kvDtype element type of the KV cache (keys and values are rounded to it when computed)
 * @param weights weight-only quantization of the linear layers ({@link WeightQuantization#NONE}:
 *     fp32)
 */
public record Numerics(KvDtype kvDtype, WeightQuantization weights) {
  /** fp32 everywhere: the numerics of a node configured with nothing else. */
  public static final Numerics DEFAULT = new Numerics(KvDtype.FP32, WeightQuantization.NONE);

  public Numerics {
    Objects.requireNonNull(kvDtype, "kvDtype");
    Objects.requireNonNull(weights, "weights");
  }

  /** Fp32 weights with a KV cache of {@code kvDtype}. */
  public Numerics(KvDtype kvDtype) {
    this(kvDtype, WeightQuantization.NONE);
  }

  /** Fp32 weights and compute with a KV cache of {@code kvDtype}. */
  public static Numerics kv(KvDtype kvDtype) {
    return new Numerics(kvDtype);
  }

  /** Fp32 KV with weights quantized as {@code weights}. */
  public static Numerics weights(WeightQuantization weights) {
    return new Numerics(KvDtype.FP32, weights);
  }

  /** These numerics with weights quantized as {@code q}. */
  public Numerics withWeights(WeightQuantization q) {
    return new Numerics(kvDtype, q);
  }
}
