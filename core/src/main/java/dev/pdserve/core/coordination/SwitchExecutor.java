package dev.pdserve.core.coordination;

import dev.pdserve.core.cluster.NodeInfo;

/**
 * Carries a switch request to the worker that runs it (its RoleService over gRPC). Blocks until it
 * ends.
 */
@FunctionalInterface
public interface SwitchExecutor {
  RoleSwitchResult execute(NodeInfo node, RoleSwitchRequest request);
}
