package dev.pdserve.core.coordination;

import dev.pdserve.core.config.NodeRole;

/**
 * How a role switch ended.
 *
 * @param accepted true when the node is ACTIVE in {@code to}; false when it was refused or
 *     abandoned (the node then serves {@code from} as before)
 * @param message what happened, or why not, in words a person can act on
 * @param nodeId the worker
 * @param from its role before
 * @param to the role asked for
 * @param epoch its registry epoch afterwards (-1 if unknown)
 * @param durationMillis from the request to the end
 * @param migrated decode sequences moved to other decode nodes while draining
 * @param finishedLocally sequences or prefills the node finished itself while draining
 */
public record RoleSwitchResult(
    boolean accepted,
    String message,
    String nodeId,
    NodeRole from,
    NodeRole to,
    long epoch,
    long durationMillis,
    int migrated,
    int finishedLocally) {

  static RoleSwitchResult refused(
      RoleSwitchRequest req, NodeRole from, long epoch, long durationMillis, String message) {
    return new RoleSwitchResult(
        false, message, req.nodeId(), from, req.to(), epoch, durationMillis, 0, 0);
  }
}
