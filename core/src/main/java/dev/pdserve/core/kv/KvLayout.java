package dev.pdserve.core.kv;

import dev.pdserve.model.config.ModelConfig;

/**
 * The shape of a paged KV cache. A block holds {@link #blockSize()} token positions of every layer,
 * laid out {@code [layer][K then V][kvHead][slot][headDim]}, so one layer of one block (its K and
 * its V) is one contiguous run of {@link #layerBytes()} bytes: the unit that is copied into and out
 * of a block, and the unit the KV transfer ships.
 *
 * @param blockSize token positions per block
 * @param layers decoder layers
 * @param kvHeads key/value heads
 * @param headDim elements per head
 * @param elementBytes bytes per element (4: fp32)
 */
public record KvLayout(int blockSize, int layers, int kvHeads, int headDim, int elementBytes) {
  /** Tokens per block unless configured otherwise. */
  public static final int DEFAULT_BLOCK_SIZE = 16;

  /** Bytes per element of the fp32 cache the engine keeps today. */
  public static final int FP32 = 4;

  public KvLayout {
    require(blockSize > 0, "blockSize", blockSize);
    require(layers > 0, "layers", layers);
    require(kvHeads > 0, "kvHeads", kvHeads);
    require(headDim > 0, "headDim", headDim);
    if (elementBytes != FP32) {
      throw new IllegalArgumentException(
          "elementBytes must be 4 (fp32 is the only element type so far), got " + elementBytes);
    }
    long block = 2L * layers * kvHeads * blockSize * headDim * elementBytes;
    if (block > Integer.MAX_VALUE) {
      throw new IllegalArgumentException(
          "a block of " + block + " bytes is too large; use a smaller blockSize than " + blockSize);
    }
  }

  /** The fp32 layout of {@code cfg} with {@link #DEFAULT_BLOCK_SIZE} tokens per block. */
  public static KvLayout of(ModelConfig cfg) {
    return of(cfg, DEFAULT_BLOCK_SIZE);
  }

  /** The fp32 layout of {@code cfg} with {@code blockSize} tokens per block. */
  public static KvLayout of(ModelConfig cfg, int blockSize) {
    return new KvLayout(blockSize, cfg.numLayers(), cfg.numKvHeads(), cfg.headDim(), FP32);
  }

  /** Elements of one head in one block of one layer, K or V: {@code blockSize × headDim}. */
  public int headElements() {
    return blockSize * headDim;
  }

  /** Elements of K (or of V) of one layer in one block: {@code kvHeads × blockSize × headDim}. */
  public int halfElements() {
    return kvHeads * blockSize * headDim;
  }

  /** Elements of one layer (K and V) in one block. */
  public int layerElements() {
    return 2 * halfElements();
  }

  /** Bytes of one layer (K and V) in one block: the contiguous unit of copies and transfers. */
  public int layerBytes() {
    return layerElements() * elementBytes;
  }

  /** Bytes of one block (every layer). */
  public int blockBytes() {
    return layers * layerBytes();
  }

  /** Byte offset of {@code layer} inside a block. */
  public int layerOffset(int layer) {
    if (layer < 0 || layer >= layers) {
      throw new IndexOutOfBoundsException("layer " + layer + " is outside 0.." + (layers - 1));
    }
    return layer * layerBytes();
  }

  /**
   * KV bytes per token across all layers: {@code 2 × layers × kvHeads × headDim × elementBytes}.
   */
  public long bytesPerToken() {
    return 2L * layers * kvHeads * headDim * elementBytes;
  }

  /** Blocks needed to hold {@code tokens} positions. */
  public int blocksFor(int tokens) {
    if (tokens < 0) {
      throw new IllegalArgumentException("tokens must be >= 0, got " + tokens);
    }
    return (tokens + blockSize - 1) / blockSize;
  }

  private static void require(boolean ok, String name, int value) {
    if (!ok) {
      throw new IllegalArgumentException(name + " must be > 0, got " + value);
    }
  }
}
