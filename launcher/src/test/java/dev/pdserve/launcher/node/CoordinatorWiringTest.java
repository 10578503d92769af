package dev.pdserve.launcher.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.coordination.RoleSwitchRequest;
import dev.pdserve.core.coordination.SwitchPlanner;
import dev.pdserve.core.coordination.SwitchPolicy;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class CoordinatorWiringTest {
  private static NodeConfig config(Map<String, String> extra) {
    var m = new HashMap<>(Map.of(NodeConfigLoader.NODE_ID, "d0", NodeConfigLoader.ROLE, "DECODE"));
    m.putAll(extra);
    return NodeConfigLoader.fromMap(m);
  }

  /** Decode nodes running (almost) their configured max batch, fast steps; prefill nodes idle. */
  private static List<NodeInfo> fullDecodeBatches(int running) {
    return List.of(
        new NodeInfo(
            "p0",
            NodeRole.PREFILL,
            NodeState.ACTIVE,
            3,
            "",
            "",
            "",
            "",
            new Load(0, 0, 100, 100, 1),
            0),
        new NodeInfo(
            "p1",
            NodeRole.PREFILL,
            NodeState.ACTIVE,
            3,
            "",
            "",
            "",
            "",
            new Load(0, 0, 100, 100, 1),
            0),
        new NodeInfo(
            "d0",
            NodeRole.DECODE,
            NodeState.ACTIVE,
            3,
            "",
            "",
            "",
            "",
            new Load(0, running, 90, 100, 1),
            0),
        new NodeInfo(
            "d1",
            NodeRole.DECODE,
            NodeState.ACTIVE,
            3,
            "",
            "",
            "",
            "",
            new Load(0, running, 90, 100, 1),
            0));
  }

  @Test
  void decodeNodesCountAsFullAtTheConfiguredMaxBatch() {
    SwitchPolicy policy =
        CoordinatorWiring.policy(config(Map.of(NodeConfigLoader.DECODE_MAX_BATCH, "8")));
    assertEquals(8, policy.settings().decodeBatchTarget());
    // The default max batch (64) is below the GPU default batch target (128): a full batch must
    // still read as full.
    assertEquals(64, CoordinatorWiring.policy(config(Map.of())).settings().decodeBatchTarget());
  }

  @Test
  void plannerMovesAPrefillNodeWhenDecodeBatchesAreFull() {
    SwitchPlanner planner =
        CoordinatorWiring.planner(config(Map.of(NodeConfigLoader.DECODE_MAX_BATCH, "8")));
    Optional<RoleSwitchRequest> plan = Optional.empty();
    // 8 of 8 sequences per decode node: pressure 1.0; the policy wants it to hold for its
    // persistence time.
    for (long t = 0; t <= 10_000 && plan.isEmpty(); t += 1_000) {
      plan = planner.plan(fullDecodeBatches(8), t);
    }
    assertTrue(plan.isPresent(), "full decode batches must move a prefill node to decode");
    assertEquals(NodeRole.DECODE, plan.get().to());
    assertEquals(3, plan.get().expectedEpoch());
    assertTrue(plan.get().nodeId().startsWith("p"), plan.get().nodeId());
  }
}
