package dev.pdserve.core.grpc;

import dev.pdserve.internal.v1.NodeServiceGrpc;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.internal.v1.StatusRequest;
import io.grpc.stub.StreamObserver;
import java.util.function.Supplier;

/** Every node's Status RPC: a snapshot of its role, state and load. */
public final class NodeStatusService extends NodeServiceGrpc.NodeServiceImplBase {
  private final Supplier<NodeStatus> status;

  public NodeStatusService(Supplier<NodeStatus> status) {
    this.status = status;
  }

  @Override
  public void status(StatusRequest req, StreamObserver<NodeStatus> out) {
    try {
      out.onNext(status.get());
      out.onCompleted();
    } catch (RuntimeException e) {
      out.onError(GrpcErrors.toException(e));
    }
  }
}
