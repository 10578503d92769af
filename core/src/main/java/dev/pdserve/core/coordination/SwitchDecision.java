package dev.pdserve.core.coordination;

import dev.pdserve.core.config.NodeRole;
import java.util.Objects;

/**
 * One role switch the coordinator should start now: move {@code nodeId} from {@code from} to {@code
 * to}, fenced by the registry epoch the policy saw.
 *
 * @param nodeId the node to switch
 * @param from its current role
 * @param to its new role
 * @param expectedEpoch the node's epoch when the decision was made; the ACTIVE → DRAINING
 *     compare-and-set must expect it
 * @param reason a human-readable explanation (pressures, counts) for logs and admin status
 */
public record SwitchDecision(
    String nodeId, NodeRole from, NodeRole to, long expectedEpoch, String reason) {
  public SwitchDecision {
    Objects.requireNonNull(nodeId, "nodeId");
    Objects.requireNonNull(from, "from");
    Objects.requireNonNull(to, "to");
    reason = Objects.requireNonNullElse(reason, "");
  }
}
