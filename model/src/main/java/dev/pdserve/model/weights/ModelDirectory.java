package dev.pdserve.model.weights;

import dev.pdserve.model.config.ConfigException;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelConfigJson;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * A model on disk as the ERNIE releases ship it: {@code config.json}, the safetensors weights
 * (single file or sharded with an index) and, optionally, {@code tokenizer.json}. Opening reads the
 * config, opens the weights and validates them against the config ({@link WeightValidator}), so a
 * directory that opens is one the engine can load. Closing releases the weight files.
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
    CheckpointWeights weights = new CheckpointWeights(dir, cfg);
    try {
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
