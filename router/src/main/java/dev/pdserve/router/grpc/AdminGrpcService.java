package dev.pdserve.router.grpc;

import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.cluster.NodeDirectory;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.internal.v1.AdminServiceGrpc;
import dev.pdserve.internal.v1.ListNodesRequest;
import dev.pdserve.internal.v1.ListNodesResponse;
import dev.pdserve.internal.v1.NodeStatus;
import io.grpc.stub.StreamObserver;

/** Cluster administration on the router: the registry's view of every node. */
public final class AdminGrpcService extends AdminServiceGrpc.AdminServiceImplBase {
  private final NodeDirectory directory;
  private final String selfId;
  private final String selfHttpUrl;

  public AdminGrpcService(NodeDirectory directory) {
    this(directory, "", "");
  }

  /**
   * @param selfId this router's node id: its entry in the listing carries {@code selfHttpUrl}
   * @param selfHttpUrl this router's OpenAI-compatible HTTP base URL ({@code http://host:port})
   */
  public AdminGrpcService(NodeDirectory directory, String selfId, String selfHttpUrl) {
    this.directory = directory;
    this.selfId = selfId;
    this.selfHttpUrl = selfHttpUrl;
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
    out.onNext(b.build());
    out.onCompleted();
  }
}
