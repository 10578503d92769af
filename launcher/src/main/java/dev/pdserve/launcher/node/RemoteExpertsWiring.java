package dev.pdserve.launcher.node;

import dev.pdserve.core.cluster.ClusterMember;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.model.engine.ExpertBackend;
import dev.pdserve.model.engine.LoadedModel;

/** Routed experts on shards (wired when the expert-shard module lands). */
final class RemoteExpertsWiring {
  private RemoteExpertsWiring() {}

  static ExpertBackend create(NodeConfig cfg, LoadedModel model, ClusterMember member, Closer closer) {
    throw new IllegalStateException("pdserve.experts.mode=remote needs the expert dispatcher, which is not wired yet");
  }
}
