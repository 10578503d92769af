package dev.pdserve.core.coordination;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.testing.FakeTicker;
import dev.pdserve.core.cluster.ClusterMember;
import dev.pdserve.core.cluster.NodeChange;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.cluster.Subscription;
import dev.pdserve.core.cluster.TestClusters;
import dev.pdserve.core.cluster.Transition;
import dev.pdserve.core.config.NodeRole;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * The switch protocol on one worker against a real embedded Hazelcast registry, with in-memory role
 * engines and a fake ticker: what the registry entry and the result say, never how long it took.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class RoleSwitcherTest {
  private static final Duration DRAIN_TIMEOUT = Duration.ofSeconds(5);

  private ClusterMember member;
  private NodeRegistry registry;
  private FakeTicker ticker;

  @BeforeAll
  void startRegistry() {
    member = TestClusters.start(TestClusters.newClusterName(), "switcher-test");
    registry = new NodeRegistry(member.hazelcast());
  }

  @AfterAll
  void stopRegistry() {
    if (registry != null) {
      registry.close();
    }
    TestClusters.closeAll(member);
  }

  @BeforeEach
  void emptyRegistry() {
    registry.all().forEach(n -> registry.remove(n.id()));
    ticker = new FakeTicker();
  }

  /** Registers {@code id} and moves it to ACTIVE; returns the stored entry. */
  private NodeInfo active(String id, NodeRole role) {
    NodeInfo n = registry.register(NodeInfo.starting(id, role, "127.0.0.1:1", "127.0.0.1:2", ""));
    Transition t =
        registry.compareAndSet(id, n.epoch(), NodeState.STARTING, role, NodeState.ACTIVE);
    assertTrue(t.applied(), t.toString());
    return t.node();
  }

  private NodeInfo entry(String id) {
    return registry.get(id).orElseThrow(() -> new AssertionError(id + " left the registry"));
  }

  /**
   * A worker's two engines in memory. Each drain takes {@code drainTakes} of the fake ticker's time
   * and answers with the next report of its script (the last one again once the script runs out).
   */
  private class InMemoryEngines implements RoleEngines {
    final String nodeId;
    final Map<NodeRole, Boolean> accepting = new EnumMap<>(NodeRole.class);
    final List<Duration> drainTimeouts = new ArrayList<>();
    final List<NodeState> statesWhileDraining = new ArrayList<>();
    final Map<NodeRole, NodeState> stateWhenAcceptingAgain = new EnumMap<>(NodeRole.class);
    private final Deque<DrainReport> script;
    private final Duration drainTakes;

    InMemoryEngines(String nodeId, Duration drainTakes, DrainReport... script) {
      this.nodeId = nodeId;
      this.drainTakes = drainTakes;
      this.script = new ArrayDeque<>(List.of(script));
    }

    @Override
    public void setAccepting(NodeRole role, boolean yes) {
      accepting.put(role, yes);
      if (yes) {
        stateWhenAcceptingAgain.put(role, entry(nodeId).state());
      }
    }

    @Override
    public DrainReport drain(NodeRole role, Duration timeout) {
      drainTimeouts.add(timeout);
      statesWhileDraining.add(entry(nodeId).state());
      ticker.advance(drainTakes);
      return script.size() > 1 ? script.poll() : script.peek();
    }
  }

  private RoleSwitcher switcher(String nodeId, RoleEngines engines) {
    return new RoleSwitcher(registry, nodeId, engines, DRAIN_TIMEOUT, ticker);
  }

  @Test
  void aSwitchGoesActiveDrainingSwitchingActiveInTheNewRoleWithThreeEpochBumps() throws Exception {
    NodeInfo before = active("ok-p1", NodeRole.PREFILL);
    active("ok-p2", NodeRole.PREFILL);
    active("ok-d1", NodeRole.DECODE);
    BlockingQueue<NodeInfo> updates = new LinkedBlockingQueue<>();
    List<RoleSwitchResult> reported = new CopyOnWriteArrayList<>();
    InMemoryEngines engines =
        new InMemoryEngines("ok-p1", Duration.ofSeconds(1), new DrainReport(true, 0, 3, ""));
    RoleSwitcher switcher = switcher("ok-p1", engines);
    switcher.addListener(reported::add);

    RoleSwitchResult r;
    try (Subscription sub =
        registry.addListener(
            c -> {
              if (c.kind() == NodeChange.Kind.UPDATED && c.id().equals("ok-p1")) {
                updates.add(c.current());
              }
            })) {
      r =
          switcher.switchRole(
              new RoleSwitchRequest("ok-p1", NodeRole.DECODE, before.epoch(), "test"));
      List<String> seen = new ArrayList<>();
      for (int i = 0; i < 3; i++) {
        NodeInfo u = updates.poll(10, TimeUnit.SECONDS);
        assertNotNull(u, "registry updates of ok-p1 seen so far: " + seen);
        seen.add(u.role() + "/" + u.state() + "@" + u.epoch());
      }
      long e = before.epoch();
      assertEquals(
          List.of(
              "PREFILL/DRAINING@" + (e + 1),
              "PREFILL/SWITCHING@" + (e + 2),
              "DECODE/ACTIVE@" + (e + 3)),
          seen,
          "the registry entry's transitions");
    }

    assertTrue(r.accepted(), r.message());
    assertEquals(NodeRole.PREFILL, r.from());
    assertEquals(NodeRole.DECODE, r.to());
    assertEquals(before.epoch() + 3, r.epoch());
    assertEquals(3, r.finishedLocally());
    assertEquals(1000, r.durationMillis(), "the drain took one second of the ticker's time");
    NodeInfo after = entry("ok-p1");
    assertEquals(NodeRole.DECODE, after.role());
    assertEquals(NodeState.ACTIVE, after.state());
    assertEquals(before.epoch() + 3, after.epoch());

    assertEquals(List.of(NodeState.DRAINING), engines.statesWhileDraining);
    assertEquals(Map.of(NodeRole.PREFILL, false, NodeRole.DECODE, true), engines.accepting);
    assertEquals(
        NodeState.SWITCHING,
        engines.stateWhenAcceptingAgain.get(NodeRole.DECODE),
        "the decode engine takes work once the entry is SWITCHING");
    assertEquals(1, switcher.switches());
    assertEquals(r, switcher.last().orElseThrow());
    assertEquals(List.of(r), reported);
  }

  @Test
  void aSwitchThatWouldLeaveItsRoleWithoutAnActiveNodeIsRefused() {
    NodeInfo before = active("only-p1", NodeRole.PREFILL);
    active("only-d1", NodeRole.DECODE);
    InMemoryEngines engines =
        new InMemoryEngines("only-p1", Duration.ZERO, new DrainReport(true, 0, 0, ""));

    RoleSwitchResult r =
        switcher("only-p1", engines)
            .switchRole(new RoleSwitchRequest("only-p1", NodeRole.DECODE, 0, "test"));

    assertFalse(r.accepted(), r.message());
    assertEquals(
        "node only-p1 is the only ACTIVE prefill node; switching it would leave the cluster"
            + " without that role",
        r.message());
    assertEquals(before, entry("only-p1"), "the entry is untouched");
    assertTrue(engines.drainTimeouts.isEmpty(), "nothing was drained");
    assertTrue(engines.accepting.isEmpty(), "the engines were not touched");
  }

  @Test
  void aRequestMadeFromAStaleEpochIsRefused() {
    NodeInfo first = active("stale-p1", NodeRole.PREFILL);
    // One more change after the requester's view (epoch 0 would mean "whatever is current").
    Transition later =
        registry.compareAndSet("stale-p1", first.epoch(), NodeState.ACTIVE, null, NodeState.ACTIVE);
    assertTrue(later.applied(), later.toString());
    NodeInfo before = later.node();
    active("stale-p2", NodeRole.PREFILL);
    active("stale-d1", NodeRole.DECODE);
    InMemoryEngines engines =
        new InMemoryEngines("stale-p1", Duration.ZERO, new DrainReport(true, 0, 0, ""));

    RoleSwitchResult r =
        switcher("stale-p1", engines)
            .switchRole(
                new RoleSwitchRequest("stale-p1", NodeRole.DECODE, before.epoch() - 1, "old view"));

    assertFalse(r.accepted(), r.message());
    assertEquals(
        "stale request: node stale-p1 is at epoch "
            + before.epoch()
            + ", the request expected "
            + (before.epoch() - 1)
            + "; read the registry again",
        r.message());
    assertEquals(before.epoch(), r.epoch());
    assertEquals(before, entry("stale-p1"), "the entry is untouched");
    assertTrue(engines.drainTimeouts.isEmpty(), "nothing was drained");
  }

  @Test
  void aDrainThatOutlastsTheTickersBoundReturnsTheNodeToActiveInItsOldRole() {
    NodeInfo before = active("slow-p1", NodeRole.PREFILL);
    active("slow-p2", NodeRole.PREFILL);
    active("slow-d1", NodeRole.DECODE);
    InMemoryEngines engines =
        new InMemoryEngines(
            "slow-p1",
            Duration.ofSeconds(1),
            new DrainReport(false, 0, 1, "2 prompt(s) still being prefilled"));
    RoleSwitcher switcher = switcher("slow-p1", engines);

    RoleSwitchResult r =
        switcher.switchRole(new RoleSwitchRequest("slow-p1", NodeRole.DECODE, 0, "test"));

    assertFalse(r.accepted(), r.message());
    assertEquals(
        "node slow-p1 did not drain within 5 s (2 prompt(s) still being prefilled); it stays"
            + " prefill",
        r.message());
    assertEquals(NodeRole.PREFILL, r.from());
    assertEquals(before.epoch() + 2, r.epoch(), "ACTIVE -> DRAINING -> ACTIVE");
    assertEquals(5000, r.durationMillis(), "the whole bound, by the ticker");
    assertEquals(5, r.finishedLocally(), "what every drain call finished adds up");
    NodeInfo after = entry("slow-p1");
    assertEquals(NodeRole.PREFILL, after.role());
    assertEquals(NodeState.ACTIVE, after.state());
    assertEquals(before.epoch() + 2, after.epoch());

    assertEquals(
        List.of(
            Duration.ofSeconds(5),
            Duration.ofSeconds(4),
            Duration.ofSeconds(3),
            Duration.ofSeconds(2),
            Duration.ofSeconds(1)),
        engines.drainTimeouts,
        "each drain is given what is left of the bound, until the ticker passes it");
    assertEquals(
        Map.of(NodeRole.PREFILL, true), engines.accepting, "the old engine takes work again");
    assertEquals(NodeState.DRAINING, engines.stateWhenAcceptingAgain.get(NodeRole.PREFILL));
    assertEquals(0, switcher.switches());
    assertEquals(r, switcher.last().orElseThrow());
  }

  @Test
  void aDrainThatReturnsEarlyWithWorkLeftIsAskedAgainWithinTheBound() {
    active("again-p1", NodeRole.PREFILL);
    active("again-p2", NodeRole.PREFILL);
    active("again-d1", NodeRole.DECODE);
    InMemoryEngines engines =
        new InMemoryEngines(
            "again-p1",
            Duration.ofSeconds(1),
            new DrainReport(false, 0, 1, "1 prompt(s) still being prefilled"),
            new DrainReport(false, 0, 1, "1 prompt(s) still being prefilled"),
            new DrainReport(true, 0, 1, ""));

    RoleSwitchResult r =
        switcher("again-p1", engines)
            .switchRole(new RoleSwitchRequest("again-p1", NodeRole.DECODE, 0, "test"));

    assertTrue(r.accepted(), r.message());
    assertEquals(
        List.of(Duration.ofSeconds(5), Duration.ofSeconds(4), Duration.ofSeconds(3)),
        engines.drainTimeouts);
    assertEquals(3, r.finishedLocally());
    assertEquals(NodeRole.DECODE, entry("again-p1").role());
  }

  @Test
  void aDrainThatFailsReturnsTheNodeToActiveInItsOldRole() {
    NodeInfo before = active("fail-p1", NodeRole.PREFILL);
    active("fail-p2", NodeRole.PREFILL);
    active("fail-d1", NodeRole.DECODE);
    RoleEngines failing =
        new InMemoryEngines("fail-p1", Duration.ZERO) {
          @Override
          public DrainReport drain(NodeRole role, Duration timeout) {
            throw new IllegalStateException("engine gone");
          }
        };

    RoleSwitchResult r =
        switcher("fail-p1", failing)
            .switchRole(new RoleSwitchRequest("fail-p1", NodeRole.DECODE, 0, "test"));

    assertFalse(r.accepted(), r.message());
    assertTrue(
        r.message().contains("drain failed: java.lang.IllegalStateException: engine gone"),
        r.message());
    NodeInfo after = entry("fail-p1");
    assertEquals(NodeRole.PREFILL, after.role());
    assertEquals(NodeState.ACTIVE, after.state());
    assertEquals(before.epoch() + 2, after.epoch());
  }
}
