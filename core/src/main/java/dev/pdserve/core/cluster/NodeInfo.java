package dev.pdserve.core.cluster;

import dev.pdserve.core.config.NodeRole;
import java.util.Objects;

/**
 * A node's registry entry. Stored with Hazelcast Compact serialization (type {@code
 * pdserve.NodeInfo}), so it travels between processes without Java serialization and its fields can
 * be queried in place.
 *
 * @param id node id (the registry key)
 * @param role current role
 * @param state lifecycle state
 * @param epoch bumped on every role/state change and re-registration; fences stale transitions
 * @param memberId UUID of the Hazelcast member that registered the node (set by the registry); its
 *     entries are removed when that member leaves the cluster
 * @param grpcAddress {@code host:port} of the node's gRPC server
 * @param flightAddress {@code host:port} of its Arrow Flight server ({@code ""} if none)
 * @param metricsUrl its metrics endpoint ({@code ""} if none)
 * @param load latest load figures
 * @param updatedAtMillis wall-clock time of the last write
 */
public record NodeInfo(
    String id,
    NodeRole role,
    NodeState state,
    long epoch,
    String memberId,
    String grpcAddress,
    String flightAddress,
    String metricsUrl,
    Load load,
    long updatedAtMillis) {

  public NodeInfo {
    Objects.requireNonNull(id, "id");
    Objects.requireNonNull(role, "role");
    Objects.requireNonNull(state, "state");
    memberId = Objects.requireNonNullElse(memberId, "");
    grpcAddress = Objects.requireNonNullElse(grpcAddress, "");
    flightAddress = Objects.requireNonNullElse(flightAddress, "");
    metricsUrl = Objects.requireNonNullElse(metricsUrl, "");
    load = Objects.requireNonNullElse(load, Load.IDLE);
    if (epoch < 0) {
      throw new IllegalArgumentException("epoch must be >= 0, got " + epoch);
    }
  }

  /** A fresh entry in {@link NodeState#STARTING}, epoch 0, idle load. */
  public static NodeInfo starting(
      String id, NodeRole role, String grpcAddress, String flightAddress, String metricsUrl) {
    return new NodeInfo(
        id, role, NodeState.STARTING, 0, "", grpcAddress, flightAddress, metricsUrl, Load.IDLE, 0);
  }

  public NodeInfo withLoad(Load newLoad, long nowMillis) {
    return new NodeInfo(
        id,
        role,
        state,
        epoch,
        memberId,
        grpcAddress,
        flightAddress,
        metricsUrl,
        newLoad,
        nowMillis);
  }

  public NodeInfo withTransition(
      NodeRole newRole, NodeState newState, long newEpoch, long nowMillis) {
    return new NodeInfo(
        id,
        newRole,
        newState,
        newEpoch,
        memberId,
        grpcAddress,
        flightAddress,
        metricsUrl,
        load,
        nowMillis);
  }

  NodeInfo withRegistration(String newMemberId, long newEpoch, long nowMillis) {
    return new NodeInfo(
        id,
        role,
        state,
        newEpoch,
        newMemberId,
        grpcAddress,
        flightAddress,
        metricsUrl,
        load,
        nowMillis);
  }
}
