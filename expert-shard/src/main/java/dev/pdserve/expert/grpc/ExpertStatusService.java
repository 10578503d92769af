package dev.pdserve.expert.grpc;

import dev.pdserve.core.config.NodeRole;
import dev.pdserve.expert.ExpertShard;
import dev.pdserve.internal.v1.NodeServiceGrpc;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.internal.v1.StatusRequest;
import io.grpc.stub.StreamObserver;

/**
 * {@code NodeService.Status} of an expert shard: its id, role, and in {@code experts} what it hosts
 * and has computed ({@link ExpertShard#describe()}). Registry fields (state, epoch) are the
 * registry's to report and are left empty here.
 */
public final class ExpertStatusService extends NodeServiceGrpc.NodeServiceImplBase {
  private final ExpertShard shard;
  private final String metricsUrl;

  public ExpertStatusService(ExpertShard shard) {
    this(shard, "");
  }

  /**
   * @param metricsUrl the shard's {@code /metrics} URL, reported in {@code metrics_url}
   */
  public ExpertStatusService(ExpertShard shard, String metricsUrl) {
    this.shard = shard;
    this.metricsUrl = metricsUrl;
  }

  @Override
  public void status(StatusRequest request, StreamObserver<NodeStatus> out) {
    out.onNext(
        NodeStatus.newBuilder()
            .setId(shard.id())
            .setRole(NodeRole.EXPERT.name())
            .setExperts(shard.describe())
            .setMetricsUrl(metricsUrl)
            .build());
    out.onCompleted();
  }
}
