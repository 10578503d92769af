package dev.pdserve.core.grpc;

import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.coordination.RoleSwitchRequest;
import dev.pdserve.core.coordination.RoleSwitchResult;
import dev.pdserve.core.coordination.SwitchExecutor;
import dev.pdserve.internal.v1.RoleServiceGrpc;
import dev.pdserve.internal.v1.SwitchRoleRequest;
import io.grpc.Context;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/** The coordinator's way to a worker: its RoleService.SwitchRole, the path operators use too. */
public final class GrpcSwitchExecutor implements SwitchExecutor {
  private final Channels channels;
  private final Duration deadline;

  public GrpcSwitchExecutor(Channels channels, Duration deadline) {
    this.channels = channels;
    this.deadline = deadline;
  }

  @Override
  public RoleSwitchResult execute(NodeInfo node, RoleSwitchRequest req) {
    SwitchRoleRequest proto =
        SwitchRoleRequest.newBuilder()
            .setNodeId(req.nodeId())
            .setTargetRole(req.to().name().toLowerCase())
            .setExpectedEpoch(req.expectedEpoch())
            .setReason(req.reason())
            .build();
    try {
      return Context.ROOT.call(
          () ->
              RoleGrpcService.fromProto(
                  RoleServiceGrpc.newBlockingStub(channels.get(node.grpcAddress()))
                      .withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS)
                      .switchRole(proto),
                  req));
    } catch (StatusRuntimeException e) {
      return new RoleSwitchResult(
          false,
          "node " + node.id() + " did not answer SwitchRole: " + e.getStatus(),
          req.nodeId(),
          node.role(),
          req.to(),
          node.epoch(),
          0,
          0,
          0);
    } catch (Exception e) {
      throw new IllegalStateException("SwitchRole on " + node.id() + " failed", e);
    }
  }
}
