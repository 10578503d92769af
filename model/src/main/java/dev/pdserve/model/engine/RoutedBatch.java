package dev.pdserve.model.engine;

/**
 * The tokens of one MoE layer step that need routed experts: {@code rows} normalised hidden states
 * ({@code hn}, row-major {@code [rows, hidden]}), each row's expert group, and its top-k expert
 * indices (within the group) and gate weights ({@code [rows, topK]}).
 */
public record RoutedBatch(
    int layer,
    int rows,
    int hidden,
    int topK,
    float[] hn,
    int[] group,
    long[] expertIds,
    float[] weights) {
  public RoutedBatch {
    if (hn.length != rows * hidden
        || group.length != rows
        || expertIds.length != rows * topK
        || weights.length != rows * topK) {
      throw new IllegalArgumentException(
          "routed batch arrays do not match rows=" + rows + " hidden=" + hidden + " topK=" + topK);
    }
  }
}
