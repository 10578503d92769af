package dev.pdserve.core.kv;

import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.config.ModelConfig;
import java.util.Objects;

/**
 * The shape of a paged KV cache. A block holds {@link #blockSize()} token positions of every layer,
 * laid out {@code [layer][K then V][kvHead][slot][headDim]}, so one layer of one block (its K and
 * its V) is one contiguous run of {@link #layerBytes()} bytes: the unit that is copied into and out
 * of a block, and the unit the KV transfer ships. Elements are little-endian {@link #dtype()}
 * values; two layouts of different dtypes are different layouts (a transfer between them is
 * refused).
 *
 * @param blockSize token positions per block
 * @param layers decoder layers
 * @param kvHeads key/value heads
 * @param headDim elements per head
 * @param dtype element type (4 bytes for fp32, 2 for fp16 and bf16)
 */
public record KvLayout(int blockSize, int layers, int kvHeads, int headDim, KvDtype dtype) {
  /** Tokens per block unless configured otherwise. */
  public static final int DEFAULT_BLOCK_SIZE = 16;

  public KvLayout {
    require(blockSize > 0, "blockSize", blockSize);
    require(layers > 0, "layers", layers);
    require(kvHeads > 0, "kvHeads", kvHeads);
    require(headDim > 0, "headDim", headDim);
    Objects.requireNonNull(dtype, "dtype");
    long block = 2L * layers * kvHeads * blockSize * headDim * dtype.elementBytes();
    if (block > Integer.MAX_VALUE) {
      throw new IllegalArgumentException(
          "a block of " + block + " bytes is too large; use a smaller blockSize than " + blockSize);
    }
  }

  /** The fp32 layout of {@code cfg} with {@link #DEFAULT_BLOCK_SIZE} tokens per block. */
  public static KvLayout of(ModelConfig cfg) {
    return of(cfg, KvDtype.FP32);
  }

  /** The fp32 layout of {@code cfg} with {@code blockSize} tokens per block. */
  public static KvLayout of(ModelConfig cfg, int blockSize) {
    return of(cfg, blockSize, KvDtype.FP32);
  }

  /**
   * The layout of {@code cfg} in {@code dtype} with {@link #DEFAULT_BLOCK_SIZE} tokens per block.
   */
  public static KvLayout of(ModelConfig cfg, KvDtype dtype) {
    return of(cfg, DEFAULT_BLOCK_SIZE, dtype);
  }

  /** The layout of {@code cfg} in {@code dtype} with {@code blockSize} tokens per block. */
  public static KvLayout of(ModelConfig cfg, int blockSize, KvDtype dtype) {
    return new KvLayout(blockSize, cfg.numLayers(), cfg.numKvHeads(), cfg.headDim(), dtype);
  }

  /** Bytes per element: {@code dtype().elementBytes()}. */
  public int elementBytes() {
    return dtype.elementBytes();
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
    return layerElements() * elementBytes();
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
    return 2L * layers * kvHeads * headDim * elementBytes();
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
