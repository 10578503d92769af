package dev.pdserve.model.config;

/**
 * One modality-isolated group of routed experts: text (group 0) or vision (group 1).
 *
 * @param name "text" or "vision"
 * @param numExperts routed experts in the group
 * @param intermediate each expert's SwiGLU intermediate width
 * @param firstLayer first decoder layer (inclusive) whose MoE block has this group
 * @param lastLayer last decoder layer (inclusive) whose MoE block has this group
 */
public record ExpertGroup(
    String name, int numExperts, int intermediate, int firstLayer, int lastLayer) {
  public static final int TEXT = 0;
  public static final int VISION = 1;

  public boolean inLayer(int layer) {
    return layer >= firstLayer && layer <= lastLayer;
  }
}
