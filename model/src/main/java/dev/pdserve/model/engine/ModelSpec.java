package dev.pdserve.model.engine;

import java.nio.file.Path;

/**
 * Which model to load: a built-in preset or an ERNIE {@code config.json} (both with seeded dummy
 * weights), or a model directory (config.json + safetensors, optionally tokenizer.json). Exactly
 * one of {@code preset}, {@code configFile} and {@code modelDir} is set.
 */
public record ModelSpec(
    String preset, Path configFile, Path modelDir, long weightSeed, boolean lowBitWeights) {
  public static final long DEFAULT_SEED = 42;

  public ModelSpec {
    int given =
        (preset != null ? 1 : 0) + (configFile != null ? 1 : 0) + (modelDir != null ? 1 : 0);
    if (given != 1) {
      throw new IllegalArgumentException(
          "give exactly one of a preset, a config file and a model directory");
    }
    if (lowBitWeights && modelDir != null) {
      throw new IllegalArgumentException(
          "low-bit dummy weights are for presets and config files, not a model directory");
    }
  }

  /** Fp32 dummy weights (quantized on load where a quantized mode asks). */
  public ModelSpec(String preset, Path configFile, Path modelDir, long weightSeed) {
    this(preset, configFile, modelDir, weightSeed, false);
  }

  /**
   * The same model with its quantized matrices generated directly in their format ({@code
   * DummyWeights.lowBit}) instead of quantized from fp32 dummy weights.
   */
  public ModelSpec withLowBitWeights(boolean lowBit) {
    return new ModelSpec(preset, configFile, modelDir, weightSeed, lowBit);
  }

  public static ModelSpec preset(String name) {
    return new ModelSpec(name, null, null, DEFAULT_SEED);
  }

  public static ModelSpec preset(String name, long seed) {
    return new ModelSpec(name, null, null, seed);
  }

  public static ModelSpec directory(Path dir) {
    return new ModelSpec(null, null, dir, DEFAULT_SEED);
  }

  public String describe() {
    if (preset != null) {
      return "preset " + preset + " (" + dummy() + ")";
    }
    if (configFile != null) {
      return "config " + configFile + " (" + dummy() + ")";
    }
    return "model directory " + modelDir;
  }

  private String dummy() {
    return (lowBitWeights ? "low-bit dummy weights" : "dummy weights") + ", seed " + weightSeed;
  }
}
