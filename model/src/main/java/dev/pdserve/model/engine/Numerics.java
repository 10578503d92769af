package dev.pdserve.model.engine;

import dev.pdserve.model.config.KvDtype;
import java.util.Objects;

/**
 * How a model is computed and stored, beside which model it is ({@link ModelSpec}): the KV cache's
 * element type. Every node of a cluster and the reference engine it is compared with must agree;
 * greedy outputs are equal only between runs of the same numerics.
 *
 * @param kvDtype element type of the KV cache (keys and values are rounded to it when computed)
 */
public record Numerics(KvDtype kvDtype) {
  /** fp32 everywhere: the numerics of a node configured with nothing else. */
  public static final Numerics DEFAULT = new Numerics(KvDtype.FP32);

  public Numerics {
    Objects.requireNonNull(kvDtype, "kvDtype");
  }

  /** Fp32 weights and compute with a KV cache of {@code kvDtype}. */
  public static Numerics kv(KvDtype kvDtype) {
    return new Numerics(kvDtype);
  }
}
