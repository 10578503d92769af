package dev.pdserve.model.quant;

import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import java.util.Objects;
import java.util.Optional;

/**
 * Weight-only quantization of a model: a {@link QuantMode} and the block size along K. Tells, for
 * every linear weight of the language model, whether it is fp32 or which {@link QuantFormat} it is
 * stored and computed in (ONNX Runtime's {@code MatMulNBits}). In a quantized mode the token
 * embedding table is gathered quantized too ({@code GatherBlockQuantized}), in the LM head's format
 * — a tied table's codes then serve both — unless {@code quantizeEmbeddings} is false. Norms, the
 * MoE gates and the vision tower stay fp32.
 *
 * <ul>
 *   <li>{@code int8}: every component 8-bit, symmetric (no zero points).
 *   <li>{@code int4}: every component 4-bit, asymmetric (zero points).
 *   <li>{@code int2-mixed}: routed experts of the first {@link #fourBitMoeLayers} MoE layers 4-bit,
 *       of the others 2-bit (both asymmetric); attention, shared experts, dense MLP and LM head
 *       8-bit.
 * </ul>
 *
 * @param mode which weights are low-bit
 * @param blockSize values of K per scale: a power of two from 16 to 256
 * @param compute what MatMulNBits computes in ({@link QuantCompute}); {@link QuantCompute#INT8}
 *     only with a quantized mode
 * @param quantizeEmbeddings whether a quantized mode stores and gathers the embedding table
 *     quantized ({@link WeightComponent#EMBEDDINGS}); false keeps it fp32. Always true with {@link
 *     QuantMode#NONE}, where it changes nothing
 */
public record WeightQuantization(
    QuantMode mode, int blockSize, QuantCompute compute, boolean quantizeEmbeddings) {
  /** Block size unless configured: 64 values per scale. */
  public static final int DEFAULT_BLOCK_SIZE = 64;

  /** fp32 weights everywhere. */
  public static final WeightQuantization NONE =
      new WeightQuantization(QuantMode.NONE, DEFAULT_BLOCK_SIZE);

  /** What a refused block size is told. */
  public static final String BLOCK_MUST_BE =
      "must be a power of two from 16 to 256 (16, 32, 64, 128 or 256)";

  /** What a compute other than fp32 with mode none is told. */
  public static final String COMPUTE_NEEDS_QUANTIZATION =
      "int8 compute needs quantized weights (int8, int4 or int2-mixed): with none nothing is"
          + " computed by MatMulNBits";

  /** {@code mode} at {@code blockSize}, computed in fp32, embeddings quantized with it. */
  public WeightQuantization(QuantMode mode, int blockSize) {
    this(mode, blockSize, QuantCompute.FP32);
  }

  /**
   * {@code mode} at {@code blockSize}, computed in {@code compute}, embeddings quantized with it.
   */
  public WeightQuantization(QuantMode mode, int blockSize, QuantCompute compute) {
    this(mode, blockSize, compute, true);
  }

  public WeightQuantization {
    Objects.requireNonNull(mode, "mode");
    if (mode == QuantMode.NONE) {
      quantizeEmbeddings = true; // nothing is quantized: one value, so that equal means the same
    }
    Objects.requireNonNull(compute, "compute");
    if (!isValidBlockSize(blockSize)) {
      throw new IllegalArgumentException(BLOCK_MUST_BE + ", got " + blockSize);
    }
    if (mode == QuantMode.NONE && compute != QuantCompute.FP32) {
      throw new IllegalArgumentException(COMPUTE_NEEDS_QUANTIZATION);
    }
  }

  /**
   * Rows a call with {@code rows} real rows is padded to: never one (ONNX Runtime reduces a single
   * row along another path than several), and with {@link QuantCompute#INT8} an even number:
   * MatMulNBits' int8-activation kernels compute rows in pairs and a last, unpaired row along
   * another path (measured: 8-bit at block ≥ 128, 4-bit at block ≥ 64), so only even counts give
   * every row the same bits whatever the batch. In fp32 compute, 4-bit MatMulNBits (ONNX Runtime
   * 1.24.2, CPU) works through the rows in tiles of {@value #ROW_TILE} and a tile of one row, the
   * last of 129, 257, ... rows, takes the single-row path too (measured, {@code MatMulNBitsTest}):
   * a quantized mode never calls with {@code 128·j + 1} rows either.
   */
  public int paddedRows(int rows) {
    int r = Math.max(rows, 2);
    if (compute == QuantCompute.INT8 && (r & 1) == 1) {
      r++;
    }
    return isQuantized() && r % ROW_TILE == 1 ? r + 1 : r;
  }

  /** Rows MatMulNBits' fp32-compute 4-bit kernel takes at a time (see {@link #paddedRows}). */
  public static final int ROW_TILE = 128;

  /** The same weights computed in {@code c}. */
  public WeightQuantization withCompute(QuantCompute c) {
    return new WeightQuantization(mode, blockSize, c, quantizeEmbeddings);
  }

  /** The same, with the embedding table quantized ({@code true}) or fp32. */
  public WeightQuantization withQuantizedEmbeddings(boolean quantize) {
    return new WeightQuantization(mode, blockSize, compute, quantize);
  }

  /** {@code mode} at the default block size. */
  public static WeightQuantization of(QuantMode mode) {
    return new WeightQuantization(mode, DEFAULT_BLOCK_SIZE);
  }

  /** Whether ONNX Runtime's MatMulNBits kernels take this block size. */
  public static boolean isValidBlockSize(int blockSize) {
    return blockSize >= 16 && blockSize <= 256 && Integer.bitCount(blockSize) == 1;
  }

  public boolean isQuantized() {
    return mode != QuantMode.NONE;
  }

  /**
   * Routed experts kept 4-bit in {@code int2-mixed}: the first ⌊MoE layers / 4⌋ MoE layers, at
   * least one and at most three (FastDeploy's WINT2 keeps the earliest MoE layers at 4 bits).
   */
  public static int fourBitMoeLayers(ModelConfig cfg) {
    int moe = 0;
    for (int l = 0; l < cfg.numLayers(); l++) {
      moe += cfg.layerKind(l) == LayerKind.MOE ? 1 : 0;
    }
    return Math.max(1, Math.min(3, moe / 4));
  }

  /** Index of layer {@code layer} among the MoE layers (0 for the first MoE layer). */
  private static int moeIndex(ModelConfig cfg, int layer) {
    int idx = 0;
    for (int l = 0; l < layer; l++) {
      idx += cfg.layerKind(l) == LayerKind.MOE ? 1 : 0;
    }
    return idx;
  }

  /**
   * Bits of {@code component} in {@code layer} (ignored for the LM head and the embeddings): 32 for
   * fp32, else 8, 4 or 2. The embeddings have the LM head's bits (32 without {@link
   * #quantizeEmbeddings}).
   */
  public int bits(ModelConfig cfg, int layer, WeightComponent component) {
    if (component == WeightComponent.EMBEDDINGS) {
      return quantizeEmbeddings ? bits(cfg, -1, WeightComponent.LM_HEAD) : 32;
    }
    return switch (mode) {
      case NONE -> 32;
      case INT8 -> 8;
      case INT4 -> 4;
      case INT2_MIXED ->
          component == WeightComponent.ROUTED_EXPERTS
              ? (moeIndex(cfg, layer) < fourBitMoeLayers(cfg) ? 4 : 2)
              : 8;
    };
  }

  /** The format of {@code component} in {@code layer}, or empty when it stays fp32. */
  public Optional<QuantFormat> format(ModelConfig cfg, int layer, WeightComponent component) {
    int bits = bits(cfg, layer, component);
    if (bits == 32) {
      return Optional.empty();
    }
    return Optional.of(new QuantFormat(bits, blockSize, bits < 8, compute));
  }

  /**
   * The format the token embedding table is stored and gathered in ({@link
   * WeightComponent#EMBEDDINGS}, the LM head's), or empty when it stays fp32.
   */
  public Optional<QuantFormat> embeddingFormat(ModelConfig cfg) {
    return format(cfg, -1, WeightComponent.EMBEDDINGS);
  }

  /**
   * Bytes of one {@code [n, k]} weight ({@code [out, in]}) of {@code component} in {@code layer}:
   * {@code 4·n·k} for fp32, else codes + fp32 scales + zero points (see {@link QuantFormat#bytes}).
   */
  public long bytes(ModelConfig cfg, int layer, WeightComponent component, long k, long n) {
    return format(cfg, layer, component).map(f -> f.bytes(k, n)).orElse(4L * n * k);
  }

  /**
   * Average bytes per weight value of {@code component} in {@code layer} for a {@code [n, k]}
   * matrix, scales and zero points included (4.0 for fp32).
   */
  public double bytesPerWeight(
      ModelConfig cfg, int layer, WeightComponent component, long k, long n) {
    return (double) bytes(cfg, layer, component, k, n) / ((double) n * k);
  }

  /**
   * E.g. {@code int4 (block 64)}, {@code int4 (block 64, int8 compute)}, {@code int8 (block 64,
   * fp32 embeddings)} or {@code none}.
   */
  public String describe() {
    if (!isQuantized()) {
      return "none";
    }
    return mode.configName()
        + " (block "
        + blockSize
        + (compute == QuantCompute.FP32 ? "" : ", " + compute.configName() + " compute")
        + (quantizeEmbeddings ? "" : ", fp32 embeddings")
        + ")";
  }
}
