package dev.pdserve.router.grpc;

import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.cluster.NodeDirectory;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.coordination.CoordinatorLease;
import dev.pdserve.core.grpc.Channels;
import dev.pdserve.internal.v1.AdminServiceGrpc;
import dev.pdserve.internal.v1.ListNodesRequest;
import dev.pdserve.internal.v1.ListNodesResponse;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.internal.v1.RoleServiceGrpc;
import dev.pdserve.internal.v1.SwitchRoleRequest;
import dev.pdserve.internal.v1.SwitchRoleResponse;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * Cluster administration on the router: the registry's view of every node and who coordinates; role
 * switches forwarded to the worker's RoleService.
 */
public final class AdminGrpcService extends AdminServiceGrpc.AdminServiceImplBase {
  /**
   * How long a forwarded switch may take (draining is bounded on the worker; this is a backstop).
   */
  private static final long SWITCH_DEADLINE_SECONDS = 600;

  private final NodeDirectory directory;
  private final String selfId;
  private final String selfHttpUrl;
  private final Channels channels;
  private final Supplier<Optional<CoordinatorLease>> coordinator;

  /**
   * @param selfId this router's node id: its entry in the listing carries {@code selfHttpUrl}
   * @param selfHttpUrl this router's OpenAI-compatible HTTP base URL ({@code http://host:port})
   * @param channels where SwitchRole is forwarded from (null: SwitchRole answers UNIMPLEMENTED)
   * @param coordinator the current coordinator lease
   */
  public AdminGrpcService(
      NodeDirectory directory,
      String selfId,
      String selfHttpUrl,
      Channels channels,
      Supplier<Optional<CoordinatorLease>> coordinator) {
    this.directory = directory;
    this.selfId = selfId;
    this.selfHttpUrl = selfHttpUrl;
    this.channels = channels;
    this.coordinator = coordinator;
  }

  @Override
  public void switchRole(SwitchRoleRequest req, StreamObserver<SwitchRoleResponse> out) {
    if (channels == null) {
      out.onError(
          Status.UNIMPLEMENTED
              .withDescription("this router does not forward role switches")
              .asRuntimeException());
      return;
    }
    Optional<NodeInfo> node = directory.get(req.getNodeId());
    if (node.isEmpty()) {
      out.onError(
          Status.NOT_FOUND
              .withDescription(
                  "no node '"
                      + req.getNodeId()
                      + "' in the registry; known nodes: "
                      + directory.all().stream().map(NodeInfo::id).toList())
              .asRuntimeException());
      return;
    }
    NodeInfo n = node.get();
    if (n.role() != NodeRole.PREFILL && n.role() != NodeRole.DECODE) {
      out.onError(
          Status.INVALID_ARGUMENT
              .withDescription(
                  "node "
                      + n.id()
                      + " is a "
                      + n.role().name().toLowerCase()
                      + " node; only prefill and decode workers switch roles")
              .asRuntimeException());
      return;
    }
    RoleServiceGrpc.newStub(channels.get(n.grpcAddress()))
        .withDeadlineAfter(SWITCH_DEADLINE_SECONDS, TimeUnit.SECONDS)
        .switchRole(req, out);
  }

  @Override
  public void listNodes(ListNodesRequest req, StreamObserver<ListNodesResponse> out) {
    ListNodesResponse.Builder b = ListNodesResponse.newBuilder();
    for (NodeInfo n : directory.all()) {
      Load l = n.load() == null ? Load.IDLE : n.load();
      b.addNodes(
          NodeStatus.newBuilder()
              .setId(n.id())
              .setRole(n.role().name().toLowerCase())
              .setState(n.state().name())
              .setEpoch(n.epoch())
              .setGrpcAddress(n.grpcAddress() == null ? "" : n.grpcAddress())
              .setFlightAddress(n.flightAddress() == null ? "" : n.flightAddress())
              .setMetricsUrl(n.metricsUrl() == null ? "" : n.metricsUrl())
              .setHttpUrl(n.id().equals(selfId) ? selfHttpUrl : "")
              .setKvFreeBlocks((int) l.kvFreeBlocks())
              .setKvTotalBlocks((int) l.kvTotalBlocks())
              .setRunningSequences(l.runningSequences())
              .setQueuedPromptTokens(l.queuedPromptTokens()));
    }
    coordinator
        .get()
        .ifPresent(l -> b.setCoordinatorNodeId(l.nodeId()).setCoordinatorTerm(l.term()));
    out.onNext(b.build());
    out.onCompleted();
  }
}
