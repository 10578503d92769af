package dev.pdserve.model.weights;

import dev.pdserve.model.config.ConfigException;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelConfigJson;
import dev.pdserve.model.quant.StoredQuantization;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * A model on disk as the ERNIE releases ship it: {@code config.json}, the safetensors weights
 * (single file or sharded with an index) and, optionally, {@code tokenizer.json}. Opening reads the
 * config, opens the weights and validates them against the config ({@link WeightValidator}), so a
 * directory that opens is one the engine can load. A directory written pre-quantized ({@code
 * pdserve model convert --quantize}) declares it in {@code config.json} and in its files' metadata;
 * both must agree ({@link #storedQuantization()}). Closing releases the weight files.
 */
public final class ModelDirectory implements AutoCloseable {
  public static final String CONFIG_FILE = "config.json";
  public static final String TOKENIZER_FILE = "tokenizer.json";

  private final Path dir;
  private final ModelConfig config;
  private final CheckpointWeights weights;
  private final Optional<Path> tokenizerJson;

  private ModelDirectory(
      Path dir, ModelConfig config, CheckpointWeights weights, Optional<Path> tokenizerJson) {
    this.dir = dir;
    this.config = config;
    this.weights = weights;
    this.tokenizerJson = tokenizerJson;
  }

  /**
   * Opens and validates the model in {@code dir}.
   *
   * @throws ConfigException if the directory or its {@code config.json} is missing or unusable
   * @throws WeightException if the weights are missing, unreadable or do not fit the config
   */
  public static ModelDirectory open(Path dir) {
    if (!Files.exists(dir)) {
      throw new ConfigException("model directory " + dir + " does not exist");
    }
    if (!Files.isDirectory(dir)) {
      throw new ConfigException("model directory " + dir + " is not a directory");
    }
    Path configFile = dir.resolve(CONFIG_FILE);
    if (!Files.isRegularFile(configFile)) {
      throw new ConfigException("model directory " + dir + " has no " + CONFIG_FILE);
    }
    ModelConfig cfg = ModelConfigJson.read(configFile);
    Optional<StoredQuantization> declared = StoredQuantization.read(configFile);
    CheckpointWeights weights = new CheckpointWeights(dir, cfg);
    try {
      if (!declared.equals(weights.storedQuantization())) {
        throw new WeightException(
            CONFIG_FILE
                + " of "
                + dir
                + " declares stored quantization "
                + declared.map(StoredQuantization::describe).orElse("none")
                + " but its safetensors files record "
                + weights.storedQuantization().map(StoredQuantization::describe).orElse("none")
                + " (metadata "
                + StoredQuantization.META_MODE
                + "); convert the original checkpoint again");
      }
      WeightValidator.check(cfg, weights);
    } catch (RuntimeException e) {
      weights.close();
      throw e;
    }
    Path tokenizer = dir.resolve(TOKENIZER_FILE);
    return new ModelDirectory(
        dir,
        cfg,
        weights,
        Files.isRegularFile(tokenizer) ? Optional.of(tokenizer) : Optional.empty());
  }

  public Path path() {
    return dir;
  }

  public ModelConfig config() {
    return config;
  }

  /** The validated weights, valid until {@link #close()}. */
  public CheckpointWeights weights() {
    return weights;
  }

  /** The quantization the weights are stored in, or empty for float weights. */
  public Optional<StoredQuantization> storedQuantization() {
    return weights.storedQuantization();
  }

  public Optional<Path> tokenizerJson() {
    return tokenizerJson;
  }

  @Override
  public void close() {
    weights.close();
  }

  @Override
  public String toString() {
    return "ModelDirectory[" + dir + ", " + config.name() + "]";
  }
}
