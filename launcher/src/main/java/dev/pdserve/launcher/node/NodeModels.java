package dev.pdserve.launcher.node;

import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.kv.PrefixHasher;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import java.nio.file.Path;

/** The model a node's config names. */
final class NodeModels {
  private NodeModels() {}

  static ModelSpec spec(NodeConfig config) {
    if (config.engine().lowBitDummyWeights() && config.engine().modelDir().isPresent()) {
      throw new IllegalArgumentException(
          NodeConfigLoader.MODEL_LOW_BIT_DUMMY_WEIGHTS
              + " is for presets (dummy weights), not a model directory ("
              + NodeConfigLoader.MODEL_DIR
              + ")");
    }
    return config
        .engine()
        .modelDir()
        .map(ModelSpec::directory)
        .orElseGet(
            () ->
                ModelSpec.preset(config.engine().modelPreset(), config.engine().modelSeed())
                    .withLowBitWeights(config.engine().lowBitDummyWeights()));
  }

  /**
   * The name the node serves its model under: {@code pdserve.model.served-name} if set, else the
   * model directory's name (not the path of its config.json), else the preset's name.
   */
  static String servedName(NodeConfig config, LoadedModel model) {
    if (config.serving().servedModelName().isPresent()) {
      return config.serving().servedModelName().get();
    }
    ModelSpec s = model.spec();
    if (s.modelDir() != null) {
      Path name = s.modelDir().toAbsolutePath().normalize().getFileName();
      if (name != null) {
        return name.toString();
      }
    }
    return model.config().name();
  }

  /**
   * Prompt block hashes for prefix caching and prefix-aware routing: the router and every worker of
   * a cluster compute the same ones (same model config name and weights, same block size).
   */
  static PrefixHasher prefixHasher(LoadedModel model) {
    ModelSpec s = model.spec();
    String weights =
        s.modelDir() != null
            ? "dir:" + s.modelDir().toAbsolutePath().normalize().getFileName()
            : s.preset() != null
                ? "preset:" + s.preset() + ":seed" + s.weightSeed()
                : "config:" + s.configFile().getFileName() + ":seed" + s.weightSeed();
    if (s.lowBitWeights()) {
      weights += ":low-bit"; // other weights than the fp32 dummy ones of the same seed
    }
    return PrefixHasher.text(model.config().name() + "|" + weights, KvLayout.DEFAULT_BLOCK_SIZE);
  }
}
