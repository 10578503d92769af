package dev.pdserve.launcher.node;

import dev.pdserve.core.config.CoordinatorConfig;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.coordination.CoordinatorSettings;
import dev.pdserve.core.coordination.RoleSwitchRequest;
import dev.pdserve.core.coordination.SwitchPlanner;
import dev.pdserve.core.coordination.SwitchPolicy;

/**
 * The switch policy a worker's coordinator runs: {@link SwitchPolicy} with the configured TTFT and
 * TPOT targets, its decisions turned into switch requests carrying the epoch the policy saw (so a
 * decision made from an outdated registry is refused by the node).
 */
final class CoordinatorWiring {
  private CoordinatorWiring() {}

  static SwitchPlanner planner(NodeConfig config) {
    CoordinatorConfig c = config.coordinator();
    SwitchPolicy policy =
        new SwitchPolicy(
            CoordinatorSettings.defaults().withTargets(c.ttftTargetMillis(), c.tpotTargetMillis()));
    return (nodes, now) ->
        policy
            .decide(nodes, now)
            .map(d -> new RoleSwitchRequest(d.nodeId(), d.to(), d.expectedEpoch(), d.reason()));
  }
}
