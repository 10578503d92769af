package dev.pdserve.prefill.grpc;

import dev.pdserve.core.grpc.GrpcErrors;
import dev.pdserve.core.grpc.ProtoConversions;
import dev.pdserve.internal.v1.PrefillRequest;
import dev.pdserve.internal.v1.PrefillResponse;
import dev.pdserve.internal.v1.PrefillServiceGrpc;
import dev.pdserve.prefill.PrefillEngine;
import dev.pdserve.prefill.PrefillJob;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;

/**
 * gRPC adapter of the prefill role: translates and delegates to {@link PrefillEngine}. A request's
 * images come in as files (checked here for size only; the engine checks the rest); one the node
 * cannot use fails the call with INVALID_ARGUMENT naming it ({@code images[k]: ...}).
 */
public final class PrefillGrpcService extends PrefillServiceGrpc.PrefillServiceImplBase {
  private final PrefillEngine engine;
  private final long maxImageBytes;

  /**
   * @param maxImageBytes the largest image file taken: the server's {@code
   *     pdserve.grpc.max-inbound-bytes}
   */
  public PrefillGrpcService(PrefillEngine engine, long maxImageBytes) {
    this.engine = engine;
    this.maxImageBytes = maxImageBytes;
  }

  @Override
  public void prefill(PrefillRequest req, StreamObserver<PrefillResponse> observer) {
    ServerCallStreamObserver<PrefillResponse> out =
        (ServerCallStreamObserver<PrefillResponse>) observer;
    PrefillJob job;
    try {
      job =
          new PrefillJob(
              req.getRequestId(),
              req.getPromptTokenIdsList().stream().mapToInt(Integer::intValue).toArray(),
              ProtoConversions.sampling(req.getParams()),
              req.getSeed(),
              req.getTransferId(),
              req.getFlightHost(),
              req.getFlightPort(),
              ProtoConversions.promptImages(req.getImagesList(), maxImageBytes));
    } catch (RuntimeException e) {
      out.onError(GrpcErrors.toException(e));
      return;
    }
    if (job.promptIds().length == 0) {
      out.onError(
          GrpcErrors.toException(
              new IllegalArgumentException(
                  "prefill of request " + req.getRequestId() + " has no prompt tokens")));
      return;
    }
    out.setOnCancelHandler(() -> engine.cancel(req.getRequestId()));
    engine
        .submit(job)
        .whenComplete(
            (r, err) -> {
              if (out.isCancelled()) {
                return;
              }
              if (err != null) {
                out.onError(GrpcErrors.toException(err));
                return;
              }
              out.onNext(
                  PrefillResponse.newBuilder()
                      .setFirstToken(r.firstToken())
                      .setFirstLogprob((float) r.firstLogprob())
                      .setCachedTokens(r.cachedTokens())
                      .setKvBytes(r.kvBytes())
                      .setComputeMicros(r.computeMicros())
                      .setTransferMicros(r.transferMicros())
                      .setCachedPromptBlocks(r.cachedPromptBlocks())
                      .build());
              out.onCompleted();
            });
  }
}
