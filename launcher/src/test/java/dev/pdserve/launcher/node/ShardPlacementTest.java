package dev.pdserve.launcher.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.cluster.ClusterMember;
import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.core.cluster.ExpertPlacementStore;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.config.ExpertRange;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.launcher.cluster.InJvmCluster;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import java.time.Duration;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * An expert shard keeps its place in the placement: the cluster prunes a shard it gave up (frozen
 * or cut off past the heartbeat bound: its registry entry went); once the shard is registered again
 * it adds itself back, and it serves again without a restart. Closed, it stays out. A real embedded
 * member.
 */
class ShardPlacementTest {
  private ClusterMember member;
  private NodeRegistry registry;

  @AfterEach
  void tearDown() {
    if (registry != null) {
      registry.close();
    }
    if (member != null) {
      member.close();
    }
  }

  @Test
  void aShardTheClusterGaveUpAddsItselfBackOnceRegisteredAgain() throws Exception {
    member =
        ClusterMember.start(
            NodeConfigLoader.fromMap(
                Map.of(
                    "role",
                    "expert",
                    "node.id",
                    "e0",
                    "expert.range",
                    "0-63",
                    "cluster.name",
                    "test-" + UUID.randomUUID().toString().substring(0, 8),
                    "cluster.port",
                    "0",
                    "cluster.join-wait-seconds",
                    "0")));
    registry = new NodeRegistry(member.hazelcast());
    ExpertPlacementStore store = new ExpertPlacementStore(member.hazelcast());
    ModelConfig model = ModelPresets.get("tiny");
    registry.register(NodeInfo.starting("e0", NodeRole.EXPERT, "127.0.0.1:1", "", ""));
    ShardPlacement placement =
        ShardPlacement.publish(store, registry, model, "e0", ExpertRange.parse("0-63"));
    assertEquals(1, placement.version());
    assertTrue(store.current().orElseThrow().covers(model));

    // The others gave e0 up: its entry went with its old member, and a pruner took it out.
    registry.remove("e0");
    ExpertPlacement pruned = store.current().orElseThrow().withoutShard("e0");
    assertTrue(store.publishAfter(1, pruned).isPresent());
    assertEquals(Set.of(), store.current().orElseThrow().shardIds());

    // Back: registered again (its presence does this), so it adds itself again.
    registry.register(NodeInfo.starting("e0", NodeRole.EXPERT, "127.0.0.1:1", "", ""));
    InJvmCluster.await(
        Duration.ofSeconds(30),
        () -> store.current().orElseThrow().shardIds().contains("e0"),
        "e0 never added itself back: " + store.current());
    ExpertPlacement back = store.current().orElseThrow();
    assertEquals(3, back.version());
    assertTrue(back.covers(model), "every expert has a shard again");

    placement.close();
    ExpertPlacement withdrawn = store.current().orElseThrow();
    assertFalse(withdrawn.shardIds().contains("e0"), "a closed shard withdraws");
    assertEquals(4, withdrawn.version());
  }
}
