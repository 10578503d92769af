package dev.pdserve.model.memory;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.WeightComponent;
import dev.pdserve.model.quant.WeightQuantization;
import java.util.List;
import java.util.Locale;

/**
 * How many bits each part of the model's weights is stored in, and the block size of the block-wise
 * scales of the low-bit parts: the input of {@link MemoryPlan}. A part stored in 16 or 32 bits has
 * no scales; a part in 2, 4 or 8 bits ({@code com.microsoft.MatMulNBits}' layout) has one fp32
 * scale per {@code blockSize} weights of a row, and with {@code zeroPoints} one packed zero point
 * per block as well.
 *
 * <p>The modes of {@link #parse} are a stand-in for the engine's quantization settings until those
 * exist (issue 13): one small table, meant to be replaced by a mapping from the engine's own mode
 * type (the arithmetic in {@link MemoryPlan} takes any table).
 *
 * @param name the mode's name, as printed
 * @param blockSize weights per scale (a power of two ≥ 16)
 * @param zeroPoints whether low-bit blocks carry a zero point
 * @param embeddingBits the token embedding table
 * @param lmHeadBits the LM head (shares the embedding table's bytes when tied and of equal bits)
 * @param attentionBits q, k, v and o projections
 * @param denseMlpBits the dense layers' MLPs
 * @param sharedExpertBits the shared experts
 * @param earlyRoutedExpertBits routed experts of the first {@code earlyMoeLayers} MoE layers
 * @param routedExpertBits routed experts of the other MoE layers
 * @param earlyMoeLayers how many MoE layers (from the first) use {@code earlyRoutedExpertBits}
 * @param visionBits the vision tower and resampler
 */
public record WeightPrecision(
    String name,
    int blockSize,
    boolean zeroPoints,
    int embeddingBits,
    int lmHeadBits,
    int attentionBits,
    int denseMlpBits,
    int sharedExpertBits,
    int earlyRoutedExpertBits,
    int routedExpertBits,
    int earlyMoeLayers,
    int visionBits) {

  /** The modes {@link #parse} knows. */
  public static final List<String> MODES = List.of("none", "int8", "int4", "int2-mixed");

  /** Block size unless told otherwise. */
  public static final int DEFAULT_BLOCK_SIZE = 64;

  /** Bytes of one block's scale: fp32, the type of the activations MatMulNBits multiplies. */
  public static final int SCALE_BYTES = 4;

  public WeightPrecision {
    if (blockSize < 16 || Integer.bitCount(blockSize) != 1) {
      throw new IllegalArgumentException(
          "block size must be a power of two >= 16, got " + blockSize);
    }
    for (int b :
        new int[] {
          embeddingBits,
          lmHeadBits,
          attentionBits,
          denseMlpBits,
          sharedExpertBits,
          earlyRoutedExpertBits,
          routedExpertBits,
          visionBits
        }) {
      if (b != 2 && b != 4 && b != 8 && b != 16 && b != 32) {
        throw new IllegalArgumentException("bits per weight must be 2, 4, 8, 16 or 32, got " + b);
      }
    }
    if (earlyMoeLayers < 0) {
      throw new IllegalArgumentException("earlyMoeLayers must be >= 0, got " + earlyMoeLayers);
    }
  }

  /** Everything in fp32: how the engine stores weights without quantization. */
  public static final WeightPrecision FP32 = parse("none", DEFAULT_BLOCK_SIZE);

  /**
   * The stand-in table of a mode: {@code none} (fp32 everywhere), {@code int8} (every linear layer
   * and the LM head 8-bit), {@code int4} (linear layers 4-bit, the LM head 8-bit), {@code
   * int2-mixed} (as FastDeploy's WINT2: routed experts 2-bit except the first 3 MoE layers' 4-bit,
   * attention, dense MLP, shared experts and LM head 8-bit). The embedding table and the vision
   * side stay fp32 in every mode.
   *
   * @throws IllegalArgumentException naming the modes, for an unknown one or a bad block size
   */
  public static WeightPrecision parse(String mode, int blockSize) {
    String m = mode.trim().toLowerCase(Locale.ROOT);
    return switch (m) {
      case "none", "fp32" ->
          new WeightPrecision("none", blockSize, false, 32, 32, 32, 32, 32, 32, 32, 0, 32);
      case "int8" -> new WeightPrecision(m, blockSize, false, 32, 8, 8, 8, 8, 8, 8, 0, 32);
      case "int4" -> new WeightPrecision(m, blockSize, false, 32, 8, 4, 4, 4, 4, 4, 0, 32);
      case "int2-mixed" -> new WeightPrecision(m, blockSize, false, 32, 8, 8, 8, 8, 4, 2, 3, 32);
      default ->
          throw new IllegalArgumentException(
              "quantization must be one of " + String.join(", ", MODES) + ", got '" + mode + "'");
    };
  }

  /**
   * The bits table of the engine's own quantization {@code q} for {@code cfg}, as the graphs store
   * the weights ({@link WeightQuantization#bits}): 4- and 2-bit parts carry zero points, 8-bit
   * parts none; the embedding table has the LM head's bits (fp32 when {@link
   * WeightQuantization#quantizeEmbeddings()} is false); the vision side stays fp32.
   */
  public static WeightPrecision of(ModelConfig cfg, WeightQuantization q) {
    if (!q.isQuantized()) {
      return parse("none", q.blockSize());
    }
    int firstMoe = cfg.layerKinds().indexOf(dev.pdserve.model.config.LayerKind.MOE);
    int layer = Math.max(0, firstMoe);
    int routed = q.bits(cfg, layer, WeightComponent.ROUTED_EXPERTS);
    int early = routed;
    int earlyLayers = 0;
    if (q.mode() == QuantMode.INT2_MIXED) {
      earlyLayers = WeightQuantization.fourBitMoeLayers(cfg);
      early = 4;
      routed = 2;
    }
    return new WeightPrecision(
        q.mode().configName(),
        q.blockSize(),
        q.mode() != QuantMode.INT8,
        q.bits(cfg, -1, WeightComponent.EMBEDDINGS),
        q.bits(cfg, 0, WeightComponent.LM_HEAD),
        q.bits(cfg, 0, WeightComponent.ATTENTION),
        q.bits(cfg, 0, WeightComponent.DENSE_MLP),
        q.bits(cfg, layer, WeightComponent.SHARED_EXPERTS),
        early,
        routed,
        earlyLayers,
        32);
  }

  /** Bits of the routed experts of the {@code moeIndex}-th MoE layer (0 = the first MoE layer). */
  public int routedExpertBits(int moeIndex) {
    return moeIndex < earlyMoeLayers ? earlyRoutedExpertBits : routedExpertBits;
  }

  /**
   * Bytes of a {@code rows × cols} weight matrix in {@code bits} bits: packed weights, and for 2, 4
   * or 8 bits one scale (and zero point) per block of {@code blockSize} weights of a row.
   */
  public long matrixBytes(long rows, long cols, int bits) {
    long packed = rows * ((cols * bits + 7) / 8);
    if (bits >= 16) {
      return packed;
    }
    long blocks = rows * ((cols + blockSize - 1) / blockSize);
    long zero = zeroPoints && bits < 8 ? (blocks * bits + 7) / 8 : 0;
    return packed + blocks * SCALE_BYTES + zero;
  }
}
