package dev.pdserve.expert;

import static dev.pdserve.expert.TinyModel.CFG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.cluster.ClusterMember;
import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.core.cluster.ExpertPlacementStore;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.cluster.Subscription;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.experts.RemoteExperts;
import dev.pdserve.core.experts.ShardDirectory;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.LocalExperts;
import dev.pdserve.model.engine.RoutedBatch;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelWeights;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Placement and shard addresses from a real embedded Hazelcast member. */
class PlacementFromRegistryTest {
  ModelWeights weights;
  ExpertCompute all;
  ShardCluster cluster;
  ClusterMember member;
  NodeRegistry registry;

  @AfterEach
  void close() {
    if (registry != null) {
      registry.close();
    }
    if (member != null) {
      member.close();
    }
    if (cluster != null) {
      cluster.close();
    }
    if (all != null) {
      all.close();
    }
    if (weights != null) {
      weights.close();
    }
  }

  @Test
  void callersFollowPublishedPlacementsAndRegisteredAddresses() throws Exception {
    weights = new ModelWeights(CFG, new DummyWeights(CFG, TinyModel.SEED), OrtRuntime.shared());
    all = new ExpertCompute(CFG, weights, OrtRuntime.shared(), ExpertCompute.HostedExperts.ALL);
    cluster =
        ShardCluster.start(
            weights, Map.of("shard-a", "0-31", "shard-b", "32-63", "shard-all", "0-63"));
    member =
        ClusterMember.start(
            NodeConfigLoader.fromMap(
                Map.of(
                    "role",
                    "decode",
                    "node.id",
                    "caller",
                    "cluster.name",
                    "test-" + UUID.randomUUID().toString().substring(0, 8),
                    "cluster.port",
                    "0",
                    "cluster.join-wait-seconds",
                    "0")));
    registry = new NodeRegistry(member.hazelcast());
    cluster.addresses.forEach(
        (id, addr) -> registry.register(NodeInfo.starting(id, NodeRole.EXPERT, addr, "", "")));
    ExpertPlacementStore store = new ExpertPlacementStore(member.hazelcast());
    ExpertPlacement split =
        ExpertPlacement.fromShardRanges(
            CFG,
            Map.of(
                "shard-a",
                cluster.ranges.get("shard-a"),
                "shard-b",
                cluster.ranges.get("shard-b")));
    assertTrue(store.publish(split.withVersion(1)));

    RemoteExperts remote =
        new RemoteExperts(
            null,
            ShardDirectory.registry(registry),
            cluster.channels,
            RemoteExperts.Settings.defaults());
    RoutedBatch b = TinyModel.randomBatch(new Random(31), 2, 9, Integer.MAX_VALUE);
    float[] expected = new LocalExperts(all).routed(b);
    try (Subscription sub = remote.followStore(store)) {
      assertEquals(1, remote.placement().version(), "the current placement is adopted at once");
      assertNull(TinyModel.firstDifference(expected, remote.routed(b), CFG.hidden()));

      ExpertPlacement whole =
          ExpertPlacement.fromShardRanges(
              CFG, Map.of("shard-all", cluster.ranges.get("shard-all")));
      assertTrue(store.publishAfter(1, whole).isPresent());
      long deadline = System.nanoTime() + 10_000_000_000L;
      while (remote.placement().version() != 2 && System.nanoTime() < deadline) {
        Thread.sleep(20);
      }
      assertEquals(2, remote.placement().version(), "published v2 not adopted");
      assertNull(TinyModel.firstDifference(expected, remote.routed(b), CFG.hidden()));
      assertEquals(1, remote.metrics().shard("shard-all").requests());
      assertEquals(1, remote.metrics().shard("shard-a").requests());
    }
  }
}
