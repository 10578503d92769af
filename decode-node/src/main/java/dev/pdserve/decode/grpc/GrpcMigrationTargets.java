package dev.pdserve.decode.grpc;

import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.grpc.Channels;
import dev.pdserve.core.kv.KvEndpoint;
import dev.pdserve.decode.MigrationTarget;
import dev.pdserve.decode.MigrationTargets;
import dev.pdserve.internal.v1.DecodeServiceGrpc;
import dev.pdserve.internal.v1.ReleaseRequest;
import dev.pdserve.internal.v1.ReserveRequest;
import dev.pdserve.internal.v1.ReserveResponse;
import io.grpc.StatusRuntimeException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Migration targets over gRPC: the other ACTIVE decode nodes of the registry, the one with the most
 * free KV first; a node that refuses (pool full, draining) is skipped.
 */
public final class GrpcMigrationTargets implements MigrationTargets {
  private static final Logger LOG = LogManager.getLogger(GrpcMigrationTargets.class);

  private final String selfId;
  private final Supplier<List<NodeInfo>> activeDecodeNodes;
  private final Channels channels;

  public GrpcMigrationTargets(
      String selfId, Supplier<List<NodeInfo>> activeDecodeNodes, Channels channels) {
    this.selfId = selfId;
    this.activeDecodeNodes = activeDecodeNodes;
    this.channels = channels;
  }

  @Override
  public Optional<MigrationTarget> reserve(String requestId, int kvTokens, int maxNewTokens) {
    List<NodeInfo> candidates = new ArrayList<>();
    for (NodeInfo n : activeDecodeNodes.get()) {
      if (!n.id().equals(selfId)) {
        candidates.add(n);
      }
    }
    candidates.sort(
        Comparator.comparingLong((NodeInfo n) -> -n.load().kvFreeBlocks())
            .thenComparing(NodeInfo::id));
    ReserveRequest req =
        ReserveRequest.newBuilder()
            .setRequestId(requestId)
            .setPromptTokens(kvTokens)
            .setMaxTokens(maxNewTokens)
            .build();
    for (NodeInfo n : candidates) {
      try {
        ReserveResponse r =
            DecodeServiceGrpc.newBlockingStub(channels.get(n.grpcAddress()))
                .withDeadlineAfter(10, TimeUnit.SECONDS)
                .reserve(req);
        try {
          return Optional.of(
              new MigrationTarget(
                  n.id(),
                  n.grpcAddress(),
                  r.getTransferId(),
                  new KvEndpoint(r.getFlightHost(), r.getFlightPort())));
        } catch (IllegalArgumentException e) {
          LOG.warn(
              "decode node {} answered a KV endpoint no push can reach ({}); skipping it",
              n.id(),
              e.getMessage());
          release(n.id(), n.grpcAddress(), r.getTransferId());
        }
      } catch (StatusRuntimeException e) {
        LOG.debug("decode node {} did not take migrating {}: {}", n.id(), requestId, e.getStatus());
      }
    }
    return Optional.empty();
  }

  @Override
  public void release(MigrationTarget target) {
    release(target.nodeId(), target.grpcAddress(), target.transferId());
  }

  private void release(String nodeId, String grpcAddress, String transferId) {
    try {
      DecodeServiceGrpc.newBlockingStub(channels.get(grpcAddress))
          .withDeadlineAfter(10, TimeUnit.SECONDS)
          .release(ReleaseRequest.newBuilder().setTransferId(transferId).build());
    } catch (StatusRuntimeException e) {
      LOG.debug(
          "could not release {} on {} (its TTL frees it): {}", transferId, nodeId, e.getStatus());
    }
  }
}
