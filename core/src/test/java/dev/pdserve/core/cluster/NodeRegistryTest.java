package dev.pdserve.core.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.config.ExpertRange;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.model.config.ModelPresets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Two real members in one JVM, shared by the tests; each test uses node ids of its own. */
@SuppressWarnings("try") // subscriptions held open by try-with-resources
class NodeRegistryTest {
  static ClusterMember a;
  static ClusterMember b;
  static NodeRegistry regA;
  static NodeRegistry regB;
  static final AtomicInteger ids = new AtomicInteger();

  @BeforeAll
  static void startCluster() {
    String cluster = TestClusters.newClusterName();
    a = TestClusters.start(cluster, "reg-a");
    b = TestClusters.start(cluster, "reg-b", a);
    assertEquals(2, b.clusterSize(), "b joined a");
    regA = new NodeRegistry(a.hazelcast());
    regB = new NodeRegistry(b.hazelcast());
  }

  @AfterAll
  static void stopCluster() {
    if (regA != null) {
      regA.close();
      regB.close();
    }
    TestClusters.closeAll(a, b);
  }

  static String newId() {
    return "node-" + ids.incrementAndGet();
  }

  static NodeInfo starting(String id, NodeRole role) {
    return NodeInfo.starting(
        id,
        role,
        "127.0.0.1:9" + id.hashCode() % 1000,
        "127.0.0.1:7000",
        "http://127.0.0.1:9090/metrics");
  }

  /** Registers and moves to ACTIVE; returns the stored entry. */
  static NodeInfo active(NodeRegistry reg, String id, NodeRole role) {
    NodeInfo n = reg.register(starting(id, role));
    Transition t = reg.compareAndSet(id, n.epoch(), NodeState.STARTING, role, NodeState.ACTIVE);
    assertTrue(t.applied(), t.toString());
    return t.node();
  }

  @Test
  void registrationIsVisibleFromAnotherMemberWithEveryField() {
    String id = newId();
    NodeInfo info =
        new NodeInfo(
            id,
            NodeRole.PREFILL,
            NodeState.STARTING,
            3,
            "",
            "10.0.0.1:50051",
            "10.0.0.1:50052",
            "http://10.0.0.1:9100/metrics",
            new Load(1234, 5, 600, 1024, 17.25),
            0);
    NodeInfo stored = regA.register(info);

    assertEquals(
        a.memberId().toString(), stored.memberId(), "register stamps the registering member");
    assertTrue(stored.updatedAtMillis() > 0);
    assertEquals(3, stored.epoch());
    NodeInfo seenFromB = regB.get(id).orElseThrow(() -> new AssertionError("b does not see " + id));
    assertEquals(stored, seenFromB, "NodeInfo round-trips between members unchanged");
    assertEquals(new Load(1234, 5, 600, 1024, 17.25), seenFromB.load());
  }

  @Test
  void reRegistrationNeverReusesAnEpoch() {
    String id = newId();
    NodeInfo first = active(regA, id, NodeRole.DECODE); // epoch 1
    NodeInfo again =
        regB.register(starting(id, NodeRole.DECODE)); // a restarted process starts at 0
    assertEquals(first.epoch() + 1, again.epoch());
    assertEquals(NodeState.STARTING, again.state());
    assertEquals(b.memberId().toString(), again.memberId());
  }

  @Test
  void staleEpochIsRefusedAndTheWinnersEpochIncrements() {
    String id = newId();
    NodeInfo n = regA.register(starting(id, NodeRole.PREFILL));
    assertEquals(0, n.epoch());

    Transition win =
        regB.compareAndSet(id, 0, NodeState.STARTING, NodeRole.PREFILL, NodeState.ACTIVE);
    assertTrue(win.applied(), win.toString());
    assertEquals(1, win.epoch());
    assertEquals(NodeState.ACTIVE, win.node().state());

    Transition stale =
        regA.compareAndSet(id, 0, NodeState.STARTING, NodeRole.DECODE, NodeState.SWITCHING);
    assertEquals(Transition.Outcome.STALE_EPOCH, stale.outcome());
    assertEquals(1, stale.epoch(), "refusal reports the current epoch");
    assertEquals(
        NodeRole.PREFILL, regA.get(id).orElseThrow().role(), "refused transition changed nothing");

    Transition wrongState =
        regA.compareAndSet(id, 1, NodeState.DRAINING, NodeRole.DECODE, NodeState.SWITCHING);
    assertEquals(Transition.Outcome.WRONG_STATE, wrongState.outcome());

    Transition drain = regA.compareAndSet(id, 1, NodeState.ACTIVE, null, NodeState.DRAINING);
    assertTrue(drain.applied());
    assertEquals(2, drain.epoch());
    assertEquals(NodeRole.PREFILL, drain.node().role(), "null role keeps the role");

    assertEquals(
        Transition.Outcome.NOT_FOUND,
        regA.compareAndSet("no-such-node", 0, null, null, NodeState.ACTIVE).outcome());
  }

  @Test
  void concurrentCompareAndSetFromTwoMembersHasExactlyOneWinner() throws Exception {
    String id = newId();
    long epoch = regA.register(starting(id, NodeRole.DECODE)).epoch();
    ExecutorService pool = Executors.newFixedThreadPool(2);
    try {
      for (int round = 0; round < 25; round++) {
        CyclicBarrier start = new CyclicBarrier(2);
        long expected = epoch;
        NodeState target = round % 2 == 0 ? NodeState.DRAINING : NodeState.ACTIVE;
        Callable<Transition> fromA =
            () -> {
              start.await();
              return regA.compareAndSet(id, expected, null, NodeRole.PREFILL, target);
            };
        Callable<Transition> fromB =
            () -> {
              start.await();
              return regB.compareAndSet(id, expected, null, NodeRole.DECODE, target);
            };
        Future<Transition> fa = pool.submit(fromA);
        Future<Transition> fb = pool.submit(fromB);
        Transition ta = fa.get(10, TimeUnit.SECONDS);
        Transition tb = fb.get(10, TimeUnit.SECONDS);
        assertTrue(
            ta.applied() ^ tb.applied(),
            "round " + round + ": exactly one winner, got " + ta + " and " + tb);
        Transition winner = ta.applied() ? ta : tb;
        Transition loser = ta.applied() ? tb : ta;
        assertEquals(expected + 1, winner.epoch());
        assertEquals(Transition.Outcome.STALE_EPOCH, loser.outcome());
        assertEquals(winner.node(), loser.node(), "the loser sees the winner's entry");
        assertEquals(winner.node(), regA.get(id).orElseThrow());
        epoch = winner.epoch();
      }
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void updateLoadLeavesRoleStateAndEpochAlone() {
    String id = newId();
    NodeInfo before = active(regA, id, NodeRole.DECODE);
    assertTrue(regB.updateLoad(id, new Load(0, 12, 100, 4096, 31.5)));
    NodeInfo after = regA.get(id).orElseThrow();
    assertEquals(new Load(0, 12, 100, 4096, 31.5), after.load());
    assertEquals(before.role(), after.role());
    assertEquals(before.state(), after.state());
    assertEquals(before.epoch(), after.epoch());
    assertEquals(before.memberId(), after.memberId());
    assertFalse(
        regA.updateLoad("no-such-node", Load.IDLE), "no entry is created for an unknown id");
    assertTrue(regA.get("no-such-node").isEmpty());
  }

  @Test
  void activeNodesFiltersByRoleAndState() {
    String p1 = newId();
    String p2 = newId();
    String d1 = newId();
    active(regA, p1, NodeRole.PREFILL);
    regB.register(starting(p2, NodeRole.PREFILL)); // STARTING: not routable
    active(regB, d1, NodeRole.DECODE);

    List<String> prefill = regB.activeNodes(NodeRole.PREFILL).stream().map(NodeInfo::id).toList();
    assertTrue(prefill.contains(p1), prefill.toString());
    assertFalse(prefill.contains(p2), "a STARTING node is not active: " + prefill);
    assertFalse(prefill.contains(d1), "a decode node is not a prefill node: " + prefill);
    assertTrue(regA.activeNodes(NodeRole.DECODE).stream().anyMatch(n -> n.id().equals(d1)));
    assertTrue(regA.all().stream().anyMatch(n -> n.id().equals(p2)));

    assertTrue(regA.remove(p1));
    assertFalse(regA.remove(p1));
    assertTrue(regB.activeNodes(NodeRole.PREFILL).stream().noneMatch(n -> n.id().equals(p1)));
  }

  @Test
  void listenersSeeAddsUpdatesAndRemovals() throws Exception {
    String id = newId();
    BlockingQueue<NodeChange> seen = new LinkedBlockingQueue<>();
    try (Subscription sub =
        regB.addListener(
            c -> {
              if (c.id().equals(id)) {
                seen.add(c);
              }
            })) {
      NodeInfo n = regA.register(starting(id, NodeRole.EXPERT));
      regA.compareAndSet(id, n.epoch(), NodeState.STARTING, null, NodeState.ACTIVE);
      regA.remove(id);

      NodeChange added = seen.poll(10, TimeUnit.SECONDS);
      NodeChange updated = seen.poll(10, TimeUnit.SECONDS);
      NodeChange removed = seen.poll(10, TimeUnit.SECONDS);
      assertEquals(NodeChange.Kind.ADDED, added.kind());
      assertEquals(n, added.current());
      assertEquals(NodeChange.Kind.UPDATED, updated.kind());
      assertEquals(NodeState.STARTING, updated.previous().state());
      assertEquals(NodeState.ACTIVE, updated.current().state());
      assertEquals(NodeChange.Kind.REMOVED, removed.kind());
      assertNull(removed.current());
      assertEquals(NodeState.ACTIVE, removed.previous().state());
    }
  }

  @Test
  void placementVersionsGoUpByOneAndRacesLose() throws Exception {
    ExpertPlacementStore storeA = new ExpertPlacementStore(a.hazelcast());
    ExpertPlacementStore storeB = new ExpertPlacementStore(b.hazelcast());
    ExpertPlacement halves =
        ExpertPlacement.fromShardRanges(
            ModelPresets.get("tiny"),
            Map.of("shard-a", new ExpertRange(0, 31), "shard-b", new ExpertRange(32, 63)));
    ExpertPlacement flipped =
        ExpertPlacement.fromShardRanges(
            ModelPresets.get("tiny"),
            Map.of("shard-a", new ExpertRange(32, 63), "shard-b", new ExpertRange(0, 31)));
    BlockingQueue<Long> published = new LinkedBlockingQueue<>();

    try (Subscription sub = storeB.onPublish(p -> published.add(p.version()))) {
      assertEquals(Optional.empty(), storeB.current());
      assertFalse(storeA.publish(halves.withVersion(2)), "version 2 cannot follow nothing");
      assertTrue(storeA.publish(halves.withVersion(1)));
      assertFalse(storeB.publish(flipped.withVersion(1)), "version 1 is taken");
      assertEquals(Optional.empty(), storeB.publishAfter(0, flipped), "stale expected version");
      ExpertPlacement v2 = storeB.publishAfter(1, flipped).orElseThrow();
      assertEquals(2, v2.version());

      ExpertPlacement seen = storeA.current().orElseThrow();
      assertEquals(v2, seen, "placement round-trips between members");
      assertEquals(List.of("shard-a"), seen.shardsFor(2, 1, 40));
      assertEquals(List.of("shard-b"), seen.shardsFor(2, 0, 5));
      assertEquals(2, storeA.currentVersion());
      assertEquals(1L, published.poll(10, TimeUnit.SECONDS));
      assertEquals(2L, published.poll(10, TimeUnit.SECONDS));
    }
  }

  @Test
  void theOldestMemberIsTheOnlyCoordinator() {
    assertTrue(a.isOldestMember(), "a started first");
    assertFalse(b.isOldestMember());
    List<Boolean> calls = new ArrayList<>();
    try (Subscription sub = b.onCoordinatorChange(calls::add)) {
      assertEquals(List.of(false), calls, "called at once with the current status");
    }
  }

  @Test
  void hazelcastConfigFollowsTheNodeConfig() {
    var cfg = ClusterMember.hazelcastConfig(a.config());
    assertEquals("false", cfg.getProperty("hazelcast.phone.home.enabled"));
    assertEquals("1", cfg.getProperty("hazelcast.heartbeat.interval.seconds"));
    assertEquals("5", cfg.getProperty("hazelcast.max.no.heartbeat.seconds"));
    assertFalse(cfg.getNetworkConfig().getJoin().getMulticastConfig().isEnabled());
    assertTrue(cfg.getNetworkConfig().getJoin().getTcpIpConfig().isEnabled());
    assertTrue(cfg.getNetworkConfig().isPortAutoIncrement());
    assertEquals(1, cfg.getMapConfig(NodeRegistry.MAP_NAME).getBackupCount());
    assertNull(
        cfg.getMapConfig(NodeRegistry.MAP_NAME).getSplitBrainProtectionName(),
        "min-size 1: no protection");
    assertEquals(
        Duration.ZERO.getSeconds(),
        Long.parseLong(cfg.getProperty("hazelcast.wait.seconds.before.join")));
  }
}
