package dev.pdserve.expert.grpc;

import dev.pdserve.core.experts.DispatchCodec;
import dev.pdserve.core.grpc.GrpcErrors;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.expert.ExpertNotHostedException;
import dev.pdserve.expert.ExpertPartial;
import dev.pdserve.expert.ExpertShard;
import dev.pdserve.expert.InvalidDispatchException;
import dev.pdserve.internal.v1.DispatchRequest;
import dev.pdserve.internal.v1.DispatchResponse;
import dev.pdserve.internal.v1.ExpertServiceGrpc;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * {@code ExpertService} over an {@link ExpertShard}: decodes the request, computes, encodes the
 * float64 partials. Invalid requests are INVALID_ARGUMENT; an expert this shard does not host is
 * FAILED_PRECONDITION (the caller's placement is stale or wrong), naming the expert and the
 * request's placement version.
 */
public final class ExpertShardService extends ExpertServiceGrpc.ExpertServiceImplBase {
  private static final Logger LOG = LogManager.getLogger(ExpertShardService.class);

  private final ExpertShard shard;

  public ExpertShardService(ExpertShard shard) {
    this.shard = shard;
  }

  @Override
  public void dispatch(DispatchRequest req, StreamObserver<DispatchResponse> out) {
    try (CloseableThreadContext.Instance ctx =
        CloseableThreadContext.put(LogContext.REQUEST_ID, req.getRequestId())) {
      ExpertPartial p;
      try {
        p = shard.compute(DispatchMessages.toBatch(req));
      } catch (InvalidDispatchException e) {
        LOG.debug("invalid dispatch for layer {}: {}", req.getLayer(), e.getMessage());
        out.onError(Status.INVALID_ARGUMENT.withDescription(e.getMessage()).asRuntimeException());
        return;
      } catch (ExpertNotHostedException e) {
        String msg =
            e.getMessage() + " (request placement version " + req.getPlacementVersion() + ")";
        LOG.warn("{}", msg);
        out.onError(Status.FAILED_PRECONDITION.withDescription(msg).asRuntimeException());
        return;
      } catch (RuntimeException e) {
        LOG.error("dispatch for layer {} failed", req.getLayer(), e);
        out.onError(
            Status.INTERNAL
                .withDescription("shard " + shard.id() + ": " + GrpcErrors.describe(e))
                .withCause(e)
                .asRuntimeException());
        return;
      }
      LOG.trace(
          "layer {}: {} rows computed, {} experts run",
          req.getLayer(),
          req.getRows(),
          p.expertsRun());
      out.onNext(
          DispatchResponse.newBuilder()
              .setPartial(DispatchCodec.doubles(p.partial()))
              .setExpertsRun(p.expertsRun())
              .build());
      out.onCompleted();
    }
  }
}
