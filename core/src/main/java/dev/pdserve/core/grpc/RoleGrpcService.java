package dev.pdserve.core.grpc;

import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.coordination.RoleSwitchRequest;
import dev.pdserve.core.coordination.RoleSwitchResult;
import dev.pdserve.core.coordination.RoleSwitcher;
import dev.pdserve.internal.v1.RoleServiceGrpc;
import dev.pdserve.internal.v1.SwitchRoleRequest;
import dev.pdserve.internal.v1.SwitchRoleResponse;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;

/** A worker's RoleService: translates and delegates to its {@link RoleSwitcher}. */
public final class RoleGrpcService extends RoleServiceGrpc.RoleServiceImplBase {
  private final RoleSwitcher switcher;

  public RoleGrpcService(RoleSwitcher switcher) {
    this.switcher = switcher;
  }

  @Override
  public void switchRole(SwitchRoleRequest req, StreamObserver<SwitchRoleResponse> out) {
    NodeRole to;
    try {
      to = NodeRole.parse(req.getTargetRole());
    } catch (IllegalArgumentException e) {
      out.onError(
          Status.INVALID_ARGUMENT
              .withDescription("target_role: " + e.getMessage())
              .asRuntimeException());
      return;
    }
    if (req.getExpectedEpoch() < 0) {
      out.onError(
          Status.INVALID_ARGUMENT
              .withDescription("expected_epoch must be >= 0, got " + req.getExpectedEpoch())
              .asRuntimeException());
      return;
    }
    try {
      RoleSwitchResult r =
          switcher.switchRole(
              new RoleSwitchRequest(req.getNodeId(), to, req.getExpectedEpoch(), req.getReason()));
      out.onNext(toProto(r));
      out.onCompleted();
    } catch (RuntimeException e) {
      out.onError(GrpcErrors.toException(e));
    }
  }

  public static SwitchRoleResponse toProto(RoleSwitchResult r) {
    return SwitchRoleResponse.newBuilder()
        .setAccepted(r.accepted())
        .setMessage(r.message())
        .setNodeId(r.nodeId())
        .setFromRole(r.from() == null ? "" : r.from().name().toLowerCase())
        .setToRole(r.to() == null ? "" : r.to().name().toLowerCase())
        .setEpoch(r.epoch())
        .setDurationMillis(r.durationMillis())
        .setMigrated(r.migrated())
        .setFinishedLocally(r.finishedLocally())
        .build();
  }

  public static RoleSwitchResult fromProto(SwitchRoleResponse r, RoleSwitchRequest req) {
    NodeRole from = r.getFromRole().isEmpty() ? null : NodeRole.parse(r.getFromRole());
    return new RoleSwitchResult(
        r.getAccepted(),
        r.getMessage(),
        req.nodeId(),
        from,
        req.to(),
        r.getEpoch(),
        r.getDurationMillis(),
        r.getMigrated(),
        r.getFinishedLocally());
  }
}
