package dev.pdserve.launcher;

import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.model.quant.QuantCompute;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.StoredQuantization;
import dev.pdserve.model.quant.WeightQuantization;
import java.util.Map;
import java.util.Optional;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/**
 * {@code --quantization MODE}, {@code --quantization-block-size N}, {@code --quantization-compute
 * C} and {@code --[no-]quantize-embeddings} (keys {@code pdserve.model.quantization}, {@code
 * pdserve.model.quantization-block-size}, {@code pdserve.model.quantization-compute} and {@code
 * pdserve.model.quantize-embeddings}) on every command that loads a model; picocli refuses a bad
 * value naming the flag and the choices.
 */
final class QuantizationOptions {
  static final String DESCRIPTION =
      "Weight-only quantization: none, int8, int4 or int2-mixed (MatMulNBits; int2-mixed: first MoE"
          + " layers' experts 4-bit, later ones 2-bit, dense parts 8-bit). Default: none.";

  @Option(
      names = "--quantization",
      paramLabel = "MODE",
      converter = ModeConverter.class,
      description = DESCRIPTION)
  QuantMode mode;

  @Option(
      names = "--quantization-block-size",
      paramLabel = "N",
      converter = BlockConverter.class,
      description = "Weights per scale along K: 16, 32, 64, 128 or 256. Default: 64.")
  Integer blockSize;

  @Option(
      names = "--quantization-compute",
      paramLabel = "C",
      converter = ComputeConverter.class,
      description =
          "What MatMulNBits computes low-bit products in: fp32 (accuracy_level 0) or int8"
              + " (accuracy_level 4, int8 activations; needs --quantization). Default: fp32.")
  QuantCompute compute;

  @Option(
      names = "--quantize-embeddings",
      negatable = true,
      description =
          "With --quantization: gather the embedding table block-quantized in the LM head's"
              + " format (GatherBlockQuantized; tied embeddings: the LM head's codes);"
              + " --no-quantize-embeddings keeps it fp32. Default: quantized.")
  Boolean quantizeEmbeddings;

  /**
   * The quantization given, defaults filled in.
   *
   * @throws IllegalArgumentException naming the flag when int8 compute is asked without a quantized
   *     mode (a usage error)
   */
  WeightQuantization resolve() {
    QuantMode m = mode == null ? QuantMode.NONE : mode;
    QuantCompute c = compute == null ? QuantCompute.FP32 : compute;
    if (m == QuantMode.NONE && c != QuantCompute.FP32) {
      throw new IllegalArgumentException(
          "--quantization-compute "
              + c.configName()
              + " needs --quantization int8, int4 or int2-mixed (with none no product is"
              + " computed by MatMulNBits)");
    }
    return new WeightQuantization(
        m,
        blockSize == null ? WeightQuantization.DEFAULT_BLOCK_SIZE : blockSize,
        c,
        embeddingsQuantized());
  }

  /** Whether the embeddings are quantized with a quantized mode ({@code --quantize-embeddings}). */
  boolean embeddingsQuantized() {
    return quantizeEmbeddings == null || quantizeEmbeddings;
  }

  /**
   * The quantization to serve a model directory stored pre-quantized as {@code stored} with: the
   * mode and block size given or, where not given, the stored ones (the compute as given); without
   * {@code stored}, {@link #resolve()}.
   *
   * @throws IllegalArgumentException naming {@code --quantization} and both values when what is
   *     given differs from what is stored
   */
  WeightQuantization resolve(Optional<StoredQuantization> stored, String where) {
    if (stored.isEmpty()) {
      return resolve();
    }
    return stored
        .get()
        .resolve(
            Optional.ofNullable(mode),
            Optional.ofNullable(blockSize),
            compute == null ? QuantCompute.FP32 : compute,
            where)
        .withQuantizedEmbeddings(embeddingsQuantized());
  }

  /** The settings a node gets from the flags given (none when none were given). */
  void putSettings(Map<String, String> settings) {
    resolve(); // refuses int8 compute without a mode here, naming the flag
    if (mode != null) {
      settings.put(NodeConfigLoader.MODEL_QUANTIZATION, mode.configName());
    }
    if (blockSize != null) {
      settings.put(NodeConfigLoader.MODEL_QUANTIZATION_BLOCK_SIZE, Integer.toString(blockSize));
    }
    if (compute != null) {
      settings.put(NodeConfigLoader.MODEL_QUANTIZATION_COMPUTE, compute.configName());
    }
    if (quantizeEmbeddings != null) {
      settings.put(
          NodeConfigLoader.MODEL_QUANTIZE_EMBEDDINGS, Boolean.toString(quantizeEmbeddings));
    }
  }

  static final class ComputeConverter implements CommandLine.ITypeConverter<QuantCompute> {
    @Override
    public QuantCompute convert(String value) {
      try {
        return QuantCompute.parse(value);
      } catch (IllegalArgumentException e) {
        throw new CommandLine.TypeConversionException(e.getMessage());
      }
    }
  }

  static final class ModeConverter implements CommandLine.ITypeConverter<QuantMode> {
    @Override
    public QuantMode convert(String value) {
      try {
        return QuantMode.parse(value);
      } catch (IllegalArgumentException e) {
        throw new CommandLine.TypeConversionException(e.getMessage());
      }
    }
  }

  static final class BlockConverter implements CommandLine.ITypeConverter<Integer> {
    @Override
    public Integer convert(String value) {
      int b;
      try {
        b = Integer.parseInt(value.trim());
      } catch (NumberFormatException e) {
        throw new CommandLine.TypeConversionException(
            WeightQuantization.BLOCK_MUST_BE + ", got '" + value + "'");
      }
      if (!WeightQuantization.isValidBlockSize(b)) {
        throw new CommandLine.TypeConversionException(
            WeightQuantization.BLOCK_MUST_BE + ", got '" + value + "'");
      }
      return b;
    }
  }
}
