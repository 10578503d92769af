package dev.pdserve.model.quant;

/** The parts of the language model a quantization mode treats separately. */
public enum WeightComponent {
  /** The routed experts' gate, up and down projections. */
  ROUTED_EXPERTS,
  /** The shared experts of MoE layers. */
  SHARED_EXPERTS,
  /** The MLP of dense layers. */
  DENSE_MLP,
  /** Query, key, value and output projections. */
  ATTENTION,
  /** The output projection to the vocabulary (the embedding table when embeddings are tied). */
  LM_HEAD,
  /**
   * The token embedding table as it is gathered (ONNX Runtime's {@code GatherBlockQuantized}): in
   * the LM head's format, so that a tied table's codes serve both.
   */
  EMBEDDINGS
}
