package dev.pdserve.launcher.node;

import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.kv.PrefixHasher;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;

/** The model a node's config names. */
final class NodeModels {
  private NodeModels() {}

  static ModelSpec spec(NodeConfig config) {
    return config
        .engine()
        .modelDir()
        .map(ModelSpec::directory)
        .orElseGet(
            () -> ModelSpec.preset(config.engine().modelPreset(), config.engine().modelSeed()));
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
    return PrefixHasher.text(model.config().name() + "|" + weights, KvLayout.DEFAULT_BLOCK_SIZE);
  }
}
