package dev.pdserve.core.kv;

/**
 * Told when a layer's new positions are in the cache, before the engine moves on to the next layer:
 * the hook a prefill node uses to ship a layer as soon as it exists.
 */
@FunctionalInterface
public interface LayerWrittenListener {
  /**
   * Positions {@code [firstPosition, firstPosition + count)} of {@code layer} are written. Runs on
   * the engine's thread; do not block for long.
   */
  void layerWritten(int layer, int firstPosition, int count);
}
