package dev.pdserve.launcher;

import dev.pdserve.model.config.ConfigException;
import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelConfigJson;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.Numerics;
import dev.pdserve.model.quant.StoredQuantization;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.function.Supplier;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** Which model a command uses: a built-in preset (dummy seeded weights) or a model directory. */
final class ModelOptions {
  @Option(
      names = "--preset",
      description = "Built-in model: ${COMPLETION-CANDIDATES}. Default: tiny.",
      completionCandidates = PresetNames.class)
  String preset;

  @Option(
      names = "--model",
      paramLabel = "DIR",
      description =
          "A model directory (config.json + safetensors, e.g. from 'pdserve model convert').")
  Path modelDir;

  @Option(
      names = "--config",
      paramLabel = "FILE",
      description = "An ERNIE config.json to read the shape from (dummy weights).")
  Path configFile;

  @Option(
      names = "--seed-weights",
      paramLabel = "N",
      defaultValue = "42",
      description = "Seed of the dummy weights (presets and --config). Default: ${DEFAULT-VALUE}.")
  long weightSeed;

  @Option(
      names = "--kv-dtype",
      paramLabel = "DTYPE",
      defaultValue = "fp32",
      converter = KvDtypeOption.class,
      description = KvDtypeOption.DESCRIPTION + " Default: ${DEFAULT-VALUE}.")
  KvDtype kvDtype;

  @Mixin QuantizationOptions quantization;

  @Option(
      names = "--low-bit-dummy-weights",
      description =
          "Generate a preset's quantized matrices directly in their low-bit format from the seed"
              + " (seconds at full size; quantizing fp32 dummy weights takes about an hour for"
              + " 28B on 2 cores). Needs --quantization int8, int4 or int2-mixed; not the"
              + " quantization of the fp32 dummy weights, so not for 'model eval'.")
  boolean lowBitDummyWeights;

  /**
   * How to compute the model: the KV dtype and weight quantization given (fp32 by default); a
   * pre-quantized {@code --model} directory's stored quantization where {@code --quantization} /
   * {@code --quantization-block-size} are not given (a different one given is refused).
   */
  Numerics numerics() {
    if (modelDir != null) {
      return new Numerics(
          kvDtype,
          quantization.resolve(StoredQuantization.readIfPresent(modelDir), "--model " + modelDir));
    }
    return new Numerics(kvDtype, quantization.resolve());
  }

  ModelConfig config() {
    int given =
        (preset != null ? 1 : 0) + (modelDir != null ? 1 : 0) + (configFile != null ? 1 : 0);
    if (given > 1) {
      throw new IllegalArgumentException("give only one of --preset, --model and --config");
    }
    if (modelDir != null) {
      if (!Files.isDirectory(modelDir)) {
        throw new IllegalArgumentException("--model " + modelDir + ": no such directory");
      }
      return named(
          "--model " + modelDir, () -> ModelConfigJson.read(modelDir.resolve("config.json")));
    }
    if (configFile != null) {
      return named("--config", () -> ModelConfigJson.read(configFile));
    }
    return named("--preset", () -> ModelPresets.get(preset == null ? "tiny" : preset));
  }

  private static ModelConfig named(String option, Supplier<ModelConfig> load) {
    try {
      return load.get();
    } catch (ConfigException e) {
      throw new IllegalArgumentException(option + ": " + e.getMessage(), e);
    }
  }

  /** The spec to load: the directory, the config file, or the preset (tiny by default). */
  ModelSpec spec() {
    config(); // validates the combination and reads the config early, with errors naming the option
    if (lowBitDummyWeights && modelDir != null) {
      throw new IllegalArgumentException(
          "--low-bit-dummy-weights is for --preset and --config (dummy weights), not --model");
    }
    if (modelDir != null) {
      return ModelSpec.directory(modelDir);
    }
    if (lowBitDummyWeights && !quantization.resolve().isQuantized()) {
      throw new IllegalArgumentException(
          "--low-bit-dummy-weights needs --quantization int8, int4 or int2-mixed (with none every"
              + " weight is fp32)");
    }
    if (configFile != null) {
      return new ModelSpec(null, configFile, null, weightSeed, lowBitDummyWeights);
    }
    return ModelSpec.preset(preset == null ? "tiny" : preset, weightSeed)
        .withLowBitWeights(lowBitDummyWeights);
  }

  static final class PresetNames implements Iterable<String> {
    @Override
    public Iterator<String> iterator() {
      return ModelPresets.names().iterator();
    }
  }
}
