package dev.pdserve.launcher.node;

import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.model.engine.ModelSpec;

/** The model a node's config names. */
final class NodeModels {
  private NodeModels() {}

  static ModelSpec spec(NodeConfig config) {
    return config
        .engine()
        .modelDir()
        .map(ModelSpec::directory)
        .orElseGet(() -> ModelSpec.preset(config.engine().modelPreset(), config.engine().modelSeed()));
  }
}
