package dev.pdserve.core.coordination;

import dev.pdserve.core.cluster.NodeInfo;
import java.util.List;
import java.util.Optional;

/** Decides, from the registry, whether a worker should switch role now (at most one at a time). */
@FunctionalInterface
public interface SwitchPlanner {
  /** Never switches: the coordinator only holds the lease and tidies the registry. */
  SwitchPlanner NONE = (nodes, now) -> Optional.empty();

  Optional<RoleSwitchRequest> plan(List<NodeInfo> nodes, long nowMillis);
}
