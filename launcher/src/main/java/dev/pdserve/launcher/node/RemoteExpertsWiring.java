package dev.pdserve.launcher.node;

import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.core.cluster.ExpertPlacementStore;
import dev.pdserve.core.cluster.NodeDirectory;
import dev.pdserve.core.experts.PlacementPruner;
import dev.pdserve.core.experts.RemoteExperts;
import dev.pdserve.core.experts.ShardDirectory;
import dev.pdserve.core.grpc.Channels;
import dev.pdserve.core.metrics.RemoteExpertsMetrics;
import dev.pdserve.launcher.node.Closer.Stage;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.engine.ExpertBackend;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Routed experts on shards: the worker follows the placement in the registry and waits (bounded, on
 * the node's clock) until every expert has a host before it calls itself ready.
 */
final class RemoteExpertsWiring {
  private static final Logger LOG = LogManager.getLogger(RemoteExpertsWiring.class);

  private RemoteExpertsWiring() {}

  static ExpertBackend create(NodeRuntime node) {
    ModelConfig model = node.model().config();
    ExpertPlacementStore store = new ExpertPlacementStore(node.member().hazelcast());
    Channels channels =
        node.channels(
            "expert-channels",
            node.channelSettings()
                .withMaxInboundMessageBytes(RemoteExperts.Settings.DEFAULT_MAX_MESSAGE_BYTES));
    NodeDirectory shards =
        node.own(Stage.CLUSTER, "shard-directory", new NodeDirectory(node.registry()));
    RemoteExperts remote =
        new RemoteExperts(
            store.current().orElse(null),
            ShardDirectory.directory(shards),
            channels,
            RemoteExperts.Settings.defaults());
    RemoteExpertsMetrics.register(node.metrics(), remote.metrics());
    node.own(Stage.CLUSTER, "placement-subscription", remote.followStore(store));
    // A shard that crashed never withdraws: take it out of the placement once it left the cluster.
    node.own(
        Stage.PRESENCE,
        "placement-pruner",
        PlacementPruner.start(node.registry(), store, node.id()));
    ExpertPlacement p =
        StartupWait.onClock(node.ticker())
            .await(
                () -> store.current().filter(c -> c.covers(model)),
                () -> LOG.info("waiting for expert shards to cover every expert"),
                () ->
                    "no expert placement covering every expert within 3 minutes (shards so far: "
                        + store.current().map(c -> c.shardIds().toString()).orElse("none")
                        + "); start expert shards whose ranges cover 0-"
                        + (model.expertGroups().get(0).numExperts() - 1),
                "expert shards");
    remote.updatePlacement(p);
    LOG.info("routed experts on shards {} (placement version {})", p.shardIds(), p.version());
    return remote;
  }
}
