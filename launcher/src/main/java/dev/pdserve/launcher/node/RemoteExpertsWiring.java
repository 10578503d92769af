package dev.pdserve.launcher.node;

import dev.pdserve.core.cluster.ClusterMember;
import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.core.cluster.ExpertPlacementStore;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.experts.RemoteExperts;
import dev.pdserve.core.experts.ShardDirectory;
import dev.pdserve.core.grpc.Channels;
import dev.pdserve.model.engine.ExpertBackend;
import dev.pdserve.model.engine.LoadedModel;
import java.util.concurrent.TimeUnit;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Routed experts on shards: the worker follows the placement in the registry and waits (bounded)
 * until every expert has a host before it calls itself ready.
 */
final class RemoteExpertsWiring {
  private static final Logger LOG = LogManager.getLogger(RemoteExpertsWiring.class);

  private RemoteExpertsWiring() {}

  static ExpertBackend create(
      NodeConfig cfg, LoadedModel model, ClusterMember member, Closer closer) {
    NodeRegistry registry = closer.add(new NodeRegistry(member.hazelcast()));
    ExpertPlacementStore store = new ExpertPlacementStore(member.hazelcast());
    Channels channels =
        closer.add(
            new Channels(
                Channels.Settings.forNode(cfg)
                    .withMaxInboundMessageBytes(RemoteExperts.Settings.DEFAULT_MAX_MESSAGE_BYTES)));
    dev.pdserve.core.cluster.NodeDirectory nodes =
        closer.add(new dev.pdserve.core.cluster.NodeDirectory(registry));
    RemoteExperts remote =
        new RemoteExperts(
            store.current().orElse(null),
            ShardDirectory.directory(nodes),
            channels,
            RemoteExperts.Settings.defaults());
    closer.add(remote.followStore(store));
    long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(3);
    boolean logged = false;
    while (true) {
      ExpertPlacement p = store.current().orElse(null);
      if (p != null && p.covers(model.config())) {
        remote.updatePlacement(p);
        LOG.info("routed experts on shards {} (placement version {})", p.shardIds(), p.version());
        return remote;
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException(
            "no expert placement covering every expert within 3 minutes (shards so far: "
                + (p == null ? "none" : p.shardIds())
                + "); start expert shards whose ranges cover 0-"
                + (model.config().expertGroups().get(0).numExperts() - 1));
      }
      if (!logged) {
        LOG.info("waiting for expert shards to cover every expert");
        logged = true;
      }
      try {
        Thread.sleep(100);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted while waiting for expert shards", e);
      }
    }
  }
}
