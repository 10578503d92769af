package dev.pdserve.core.coordination;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class SwitchPolicyTest {
  /**
   * TTFT 1 s, TPOT 100 ms, 1000 prompt tokens/s per prefill node, 100 sequences per decode node; no
   * smoothing or timers.
   */
  private static final CoordinatorSettings IMMEDIATE =
      new CoordinatorSettings(1000, 100, 1000, 100, 1.0, 0.7, 0.15, 0, 0, 0, 0, 1);

  private static NodeInfo prefill(String id, long queued) {
    return node(id, NodeRole.PREFILL, NodeState.ACTIVE, new Load(queued, 0, 100, 100, 10));
  }

  private static NodeInfo decode(String id, int running, double stepMillis) {
    return node(id, NodeRole.DECODE, NodeState.ACTIVE, new Load(0, running, 100, 100, stepMillis));
  }

  private static NodeInfo node(String id, NodeRole role, NodeState state, Load load) {
    return new NodeInfo(id, role, state, 7, "", "", "", "", load, 0);
  }

  private static List<NodeInfo> prefillStarved() {
    // 3000 queued tokens per node at 1000 tokens/s = 3 s of queueing vs a 1 s TTFT target.
    return List.of(
        prefill("p1", 3000),
        prefill("p2", 3000),
        decode("d1", 5, 20),
        decode("d2", 2, 20),
        decode("d3", 9, 20));
  }

  private static List<NodeInfo> decodeStarved() {
    // 250 ms steps vs a 100 ms TPOT target.
    return List.of(
        prefill("p1", 10),
        prefill("p2", 0),
        prefill("p3", 100),
        decode("d1", 50, 250),
        decode("d2", 50, 250));
  }

  @Test
  void movesLeastLoadedDecodeNodeToPrefillWhenPromptBacklogExceedsTtft() {
    SwitchPolicy policy = new SwitchPolicy(IMMEDIATE);
    SwitchDecision d =
        policy
            .decide(prefillStarved(), 1_000)
            .orElseThrow(() -> new AssertionError(policy.lastReading()));
    assertEquals(
        "d2", d.nodeId(), "the decode node with the fewest running sequences is the donor");
    assertEquals(NodeRole.DECODE, d.from());
    assertEquals(NodeRole.PREFILL, d.to());
    assertEquals(7, d.expectedEpoch(), "the decision is fenced by the epoch the policy saw");
    assertTrue(d.reason().contains("PREFILL starved"), d.reason());
    assertEquals(3.0, policy.lastReading().prefillPressure(), 1e-9);
  }

  @Test
  void movesLeastLoadedPrefillNodeToDecodeWhenStepTimeExceedsTpot() {
    SwitchPolicy policy = new SwitchPolicy(IMMEDIATE);
    SwitchDecision d =
        policy
            .decide(decodeStarved(), 1_000)
            .orElseThrow(() -> new AssertionError(policy.lastReading()));
    assertEquals("p2", d.nodeId(), "the prefill node with the shortest queue is the donor");
    assertEquals(NodeRole.DECODE, d.to());
    assertEquals(2.5, policy.lastReading().decodePressure(), 1e-9);
  }

  @Test
  void kvOccupancyAndBatchSizeCountAsDecodePressure() {
    SwitchPolicy policy = new SwitchPolicy(IMMEDIATE);
    List<NodeInfo> kvFull =
        List.of(
            prefill("p1", 0),
            prefill("p2", 0),
            node("d1", NodeRole.DECODE, NodeState.ACTIVE, new Load(0, 3, 2, 100, 10)),
            node("d2", NodeRole.DECODE, NodeState.ACTIVE, new Load(0, 3, 4, 100, 10)));
    assertEquals(NodeRole.DECODE, policy.decide(kvFull, 0).orElseThrow().to());
    assertEquals(0.97, policy.lastReading().decodePressure(), 1e-9);

    SwitchPolicy batch = new SwitchPolicy(IMMEDIATE);
    List<NodeInfo> bigBatches =
        List.of(prefill("p1", 0), prefill("p2", 0), decode("d1", 150, 10), decode("d2", 150, 10));
    assertEquals(NodeRole.DECODE, batch.decide(bigBatches, 0).orElseThrow().to());
  }

  @Test
  void balancedLoadSwitchesNothing() {
    SwitchPolicy policy = new SwitchPolicy(IMMEDIATE);
    List<NodeInfo> nodes =
        List.of(prefill("p1", 200), prefill("p2", 300), decode("d1", 10, 40), decode("d2", 10, 40));
    assertEquals(Optional.empty(), policy.decide(nodes, 0));
    assertTrue(
        policy.lastReading().verdict().startsWith("balanced"), policy.lastReading().verdict());
  }

  @Test
  void neverLeavesARoleBelowItsMinimum() {
    SwitchPolicy one = new SwitchPolicy(IMMEDIATE);
    assertEquals(
        Optional.empty(),
        one.decide(List.of(prefill("p1", 50_000), decode("d1", 0, 0)), 0),
        "the only decode node must stay");
    assertTrue(one.lastReading().verdict().contains("minimum"), one.lastReading().verdict());

    SwitchPolicy two = new SwitchPolicy(IMMEDIATE.withMinNodesPerRole(3));
    assertEquals(
        Optional.empty(),
        two.decide(prefillStarved(), 0),
        "3 decode nodes with a minimum of 3: none may go");
    SwitchPolicy twoOk = new SwitchPolicy(IMMEDIATE.withMinNodesPerRole(2));
    assertTrue(
        twoOk.decide(prefillStarved(), 0).isPresent(),
        "3 decode nodes with a minimum of 2: one may go");
  }

  @Test
  void waitsWhileAnySwitchIsInFlight() {
    SwitchPolicy policy = new SwitchPolicy(IMMEDIATE);
    for (NodeState state : List.of(NodeState.DRAINING, NodeState.SWITCHING, NodeState.STARTING)) {
      List<NodeInfo> nodes = new ArrayList<>(prefillStarved());
      nodes.add(node("d9", NodeRole.DECODE, state, Load.IDLE));
      assertEquals(Optional.empty(), policy.decide(nodes, 0), "a node in " + state + " means wait");
      assertTrue(
          policy.lastReading().verdict().contains("in flight"), policy.lastReading().verdict());
    }
    List<NodeInfo> nodes = new ArrayList<>(prefillStarved());
    nodes.add(node("d9", NodeRole.DECODE, NodeState.STOPPED, Load.IDLE));
    assertTrue(policy.decide(nodes, 0).isPresent(), "a STOPPED node is not a switch in flight");
  }

  @Test
  void ignoresRouterAndExpertNodes() {
    SwitchPolicy policy = new SwitchPolicy(IMMEDIATE);
    List<NodeInfo> nodes = new ArrayList<>(List.of(prefill("p1", 50_000), decode("d1", 0, 0)));
    nodes.add(node("r", NodeRole.ROUTER, NodeState.ACTIVE, Load.IDLE));
    nodes.add(node("e", NodeRole.EXPERT, NodeState.DRAINING, Load.IDLE));
    assertEquals(
        Optional.empty(),
        policy.decide(nodes, 0),
        "routers and shards are never donors nor in flight");
    assertTrue(policy.lastReading().verdict().contains("minimum"), policy.lastReading().verdict());
  }

  @Test
  void coolDownFollowsEachSwitchAndCountsFromItsEnd() {
    SwitchPolicy policy = new SwitchPolicy(IMMEDIATE.withTiming(0, 0, 10_000, 0));
    assertTrue(policy.decide(prefillStarved(), 0).isPresent());
    assertEquals(
        Optional.empty(), policy.decide(prefillStarved(), 5_000), "cool-down after the decision");
    assertTrue(
        policy.lastReading().verdict().startsWith("cool-down"), policy.lastReading().verdict());
    // The switch runs from 5 s to 12 s; the cool-down counts from when it was last seen in flight.
    List<NodeInfo> switching = new ArrayList<>(prefillStarved());
    switching.add(node("d4", NodeRole.DECODE, NodeState.DRAINING, Load.IDLE));
    assertEquals(Optional.empty(), policy.decide(switching, 12_000));
    assertEquals(Optional.empty(), policy.decide(prefillStarved(), 21_999));
    assertTrue(
        policy.decide(prefillStarved(), 22_000).isPresent(),
        "cool-down over 10 s after the switch ended");
    assertEquals(2, policy.switchesDecided());
  }

  @Test
  void imbalanceMustPersistBeforeASwitch() {
    SwitchPolicy policy = new SwitchPolicy(IMMEDIATE.withTiming(0, 4_000, 0, 0));
    assertEquals(Optional.empty(), policy.decide(prefillStarved(), 0));
    assertEquals(Optional.empty(), policy.decide(prefillStarved(), 3_000));
    assertTrue(
        policy.lastReading().verdict().contains("3000 ms of the 4000"),
        policy.lastReading().verdict());
    // The imbalance goes away for one reading: the clock restarts.
    List<NodeInfo> calm =
        List.of(
            prefill("p1", 0),
            prefill("p2", 0),
            decode("d1", 1, 10),
            decode("d2", 1, 10),
            decode("d3", 1, 10));
    assertEquals(Optional.empty(), policy.decide(calm, 3_500));
    assertEquals(Optional.empty(), policy.decide(prefillStarved(), 4_000));
    assertEquals(Optional.empty(), policy.decide(prefillStarved(), 7_999));
    assertTrue(policy.decide(prefillStarved(), 8_000).isPresent());
  }

  @Test
  void smoothingIgnoresAShortSpike() {
    SwitchPolicy policy = new SwitchPolicy(IMMEDIATE.withTiming(10_000, 0, 0, 0));
    List<NodeInfo> calm =
        List.of(
            prefill("p1", 100),
            prefill("p2", 100),
            decode("d1", 1, 10),
            decode("d2", 1, 10),
            decode("d3", 1, 10));
    for (long t = 0; t <= 20_000; t += 1_000) {
      assertEquals(Optional.empty(), policy.decide(calm, t));
    }
    assertEquals(
        Optional.empty(),
        policy.decide(prefillStarved(), 21_000),
        "one 3x reading a second long stays under 0.7 smoothed");
    assertTrue(policy.lastReading().smoothedPrefill() < 0.7, policy.lastReading().toString());
    Optional<SwitchDecision> d = Optional.empty();
    long t = 22_000;
    for (; d.isEmpty() && t < 60_000; t += 1_000) {
      d = policy.decide(prefillStarved(), t);
    }
    assertTrue(d.isPresent(), "a sustained backlog gets through the smoothing");
    assertTrue(t > 23_000, "but not on the first readings, got a switch at " + t);
  }

  @Test
  void noSwitchWhenTheMoveWouldNotLowerThePeakPressureByTheMargin() {
    SwitchPolicy policy = new SwitchPolicy(IMMEDIATE);
    // Both roles hot: prefill 1.0, decode 0.9. Moving a decode node gives prefill 0.67, decode 1.8.
    List<NodeInfo> hot =
        List.of(
            prefill("p1", 1000), prefill("p2", 1000), decode("d1", 50, 90), decode("d2", 50, 90));
    assertEquals(Optional.empty(), policy.decide(hot, 0));
    assertTrue(
        policy.lastReading().verdict().contains("would only bring"),
        policy.lastReading().verdict());
  }

  @Test
  void aReversalWaitsForTheReverseHold() {
    SwitchPolicy policy = new SwitchPolicy(IMMEDIATE.withTiming(0, 0, 1_000, 60_000));
    assertEquals(NodeRole.PREFILL, policy.decide(prefillStarved(), 0).orElseThrow().to());
    assertEquals(Optional.empty(), policy.decide(decodeStarved(), 30_000));
    assertTrue(policy.lastReading().verdict().contains("reversal"), policy.lastReading().verdict());
    assertEquals(
        NodeRole.PREFILL,
        policy.decide(prefillStarved(), 30_000).orElseThrow().to(),
        "the same direction is not held back");
    assertEquals(Optional.empty(), policy.decide(decodeStarved(), 89_999));
    assertEquals(NodeRole.DECODE, policy.decide(decodeStarved(), 90_000).orElseThrow().to());
  }

  @Test
  void refillsAnEmptyRole() {
    SwitchPolicy policy = new SwitchPolicy(IMMEDIATE);
    SwitchDecision d =
        policy.decide(List.of(decode("d1", 5, 10), decode("d2", 1, 10)), 0).orElseThrow();
    assertEquals("d2", d.nodeId());
    assertEquals(NodeRole.PREFILL, d.to());
  }

  @Test
  void settingsRejectBadValuesNamingTheKey() {
    CoordinatorSettings ok = CoordinatorSettings.defaults();
    assertEquals(1, ok.minNodesPerRole());
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> ok.withMinNodesPerRole(0));
    assertTrue(e.getMessage().startsWith("minNodesPerRole must be >= 1"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> ok.withTargets(0, 50));
    assertTrue(e.getMessage().startsWith("ttftTargetMillis must be"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> ok.withHysteresis(0.7, 1.0));
    assertTrue(e.getMessage().startsWith("improvementMargin must be in [0, 1)"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> ok.withTiming(-1, 0, 0, 0));
    assertTrue(e.getMessage().startsWith("smoothingWindowMillis must be >= 0"), e.getMessage());
  }
}
