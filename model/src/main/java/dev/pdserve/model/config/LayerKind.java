package dev.pdserve.model.config;

/** What follows attention in a decoder layer. */
public enum LayerKind {
  /** A dense SwiGLU MLP of {@code intermediate_size}. */
  DENSE,
  /** Routed experts (per modality group) plus shared experts. */
  MOE
}
