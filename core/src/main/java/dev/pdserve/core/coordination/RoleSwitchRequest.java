package dev.pdserve.core.coordination;

import dev.pdserve.core.config.NodeRole;
import java.util.Objects;

/**
 * A request to move one worker to another role, from an operator ({@code pdserve admin switch}) or
 * from the coordinator's policy.
 *
 * @param nodeId the worker
 * @param to the role it should serve afterwards (prefill or decode)
 * @param expectedEpoch the registry epoch the requester saw; 0 = whatever is current. A request
 *     made from an older view of the node is refused.
 * @param reason why (logged with every transition)
 */
public record RoleSwitchRequest(String nodeId, NodeRole to, long expectedEpoch, String reason) {
  public RoleSwitchRequest {
    Objects.requireNonNull(nodeId, "nodeId");
    Objects.requireNonNull(to, "to");
    reason = reason == null || reason.isBlank() ? "unspecified" : reason;
    if (expectedEpoch < 0) {
      throw new IllegalArgumentException("expected epoch must be >= 0, got " + expectedEpoch);
    }
  }
}
