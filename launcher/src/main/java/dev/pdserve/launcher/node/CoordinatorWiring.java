package dev.pdserve.launcher.node;

import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.coordination.SwitchPlanner;

/**
 * Which switch policy a worker's coordinator runs. The policy itself (pressure, hysteresis,
 * cool-down) lives in {@code core/.../coordination/SwitchPolicy}; until it is wired here the
 * coordinator holds the lease, tidies the registry and switches nothing on its own (operators
 * still switch with {@code pdserve admin switch}).
 */
final class CoordinatorWiring {
  private CoordinatorWiring() {}

  static SwitchPlanner planner(NodeConfig config) {
    return SwitchPlanner.NONE;
  }
}
