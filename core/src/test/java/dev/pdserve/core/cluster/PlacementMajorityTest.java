package dev.pdserve.core.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.hazelcast.config.Config;
import com.hazelcast.core.Hazelcast;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.splitbrainprotection.SplitBrainProtectionException;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.experts.PlacementPruner;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The expert placement is written only by a majority of the recent cluster. A member left alone
 * (here its peer crashes; in the fault suite an unfrozen worker was split off while a shard was
 * frozen) sees every shard on the other side as departed: its pruner must not publish a placement
 * without them, which the merge could not reconcile with the live side's placement of the same
 * version. Once it is all there is for longer than the quorum window (on an injected clock), it
 * prunes as usual. Real embedded members on loopback.
 */
class PlacementMajorityTest {
  private static final Duration WINDOW = Duration.ofSeconds(30);

  private final AtomicLong nanos = new AtomicLong(1_000_000_000L);
  private HazelcastInstance a;
  private HazelcastInstance b;
  private NodeRegistry regA;
  private NodeRegistry regB;
  private PlacementPruner pruner;

  @AfterEach
  void tearDown() {
    if (pruner != null) {
      pruner.close();
    }
    for (NodeRegistry r : new NodeRegistry[] {regB, regA}) {
      if (r != null) {
        try {
          r.close();
        } catch (RuntimeException ignored) {
          // its member is gone
        }
      }
    }
    for (HazelcastInstance hz : new HazelcastInstance[] {b, a}) {
      if (hz != null && hz.getLifecycleService().isRunning()) {
        hz.getLifecycleService().terminate();
      }
    }
  }

  private HazelcastInstance start(String cluster, String id, HazelcastInstance seed) {
    Map<String, String> m = new HashMap<>();
    m.put("cluster.quorum-window-seconds", Long.toString(WINDOW.toSeconds()));
    if (seed != null) {
      var addr = seed.getCluster().getLocalMember().getAddress();
      m.put("cluster.members", addr.getHost() + ":" + addr.getPort());
    }
    Config cfg = ClusterMember.hazelcastConfig(TestClusters.config(cluster, id, m));
    // The same rule the configuration installs, on this test's clock.
    cfg.getSplitBrainProtectionConfig(ClusterMember.PLACEMENT_PROTECTION)
        .setFunctionImplementation(new RecentMajority(WINDOW, 1, nanos::get));
    return Hazelcast.newHazelcastInstance(cfg);
  }

  private static void register(NodeRegistry reg, String id) {
    NodeInfo n = reg.register(NodeInfo.starting(id, NodeRole.EXPERT, "127.0.0.1:1", "", ""));
    reg.compareAndSet(id, n.epoch(), NodeState.STARTING, null, NodeState.ACTIVE);
  }

  @Test
  void aMemberLeftAloneDoesNotPruneUntilItIsAllThereIsForTheWindow() throws Exception {
    String cluster = TestClusters.newClusterName();
    a = start(cluster, "shard-a", null);
    b = start(cluster, "shard-b", a);
    TestClusters.await(
        Duration.ofSeconds(30),
        () -> a.getCluster().getMembers().size() == 2,
        () -> "b never joined a");
    regA = new NodeRegistry(a);
    regB = new NodeRegistry(b);
    register(regA, "shard-a");
    register(regB, "shard-b");
    ExpertPlacementStore store = new ExpertPlacementStore(a);
    ExpertPlacement.ExpertKey onA = new ExpertPlacement.ExpertKey(0, 0, 0);
    ExpertPlacement.ExpertKey onB = new ExpertPlacement.ExpertKey(0, 0, 1);
    ExpertPlacement v1 =
        new ExpertPlacement(1, Map.of(onA, List.of("shard-a"), onB, List.of("shard-b")));
    // The protection is evaluated on Hazelcast's executor: wait until it has seen both members.
    TestClusters.await(
        Duration.ofSeconds(30),
        () -> {
          try {
            return store.publish(v1);
          } catch (SplitBrainProtectionException e) {
            return false;
          }
        },
        () -> "the placement was never writable with both members up");
    pruner = PlacementPruner.start(regA, store, "shard-a", Duration.ofMillis(200));

    b.getLifecycleService().terminate(); // a crash: no goodbye, no withdrawal
    TestClusters.await(
        Duration.ofSeconds(60),
        () -> regA.get("shard-b").isEmpty() && a.getCluster().getMembers().size() == 1,
        () -> "a never gave b up");
    TestClusters.await(
        Duration.ofSeconds(30),
        () -> pruner.refusals() >= 2,
        () -> "the pruner was never refused (refusals " + pruner.refusals() + ")");
    assertEquals(
        v1,
        store.current().orElseThrow(),
        "alone, one of the two members just seen, a left the placement as it was");
    assertThrows(
        SplitBrainProtectionException.class,
        () -> store.publish(v1.withoutShard("shard-b").withVersion(2)),
        "a minority of the recent cluster may not write the placement");

    // b stays gone for longer than the window: a is the whole cluster now, and prunes.
    nanos.addAndGet(WINDOW.toNanos() + Duration.ofSeconds(1).toNanos());
    TestClusters.await(
        Duration.ofSeconds(60),
        () -> store.current().map(p -> p.version() == 2).orElse(false),
        () -> "a never pruned b after the window: " + store.current());
    ExpertPlacement v2 = store.current().orElseThrow();
    assertEquals(Set.of("shard-a"), v2.shardIds());
    assertEquals(List.of("shard-a"), v2.shards().get(onA));
    assertTrue(!v2.shards().containsKey(onB), "b's expert has no shard now");
  }
}
