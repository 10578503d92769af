package dev.pdserve.router.grpc;

import dev.pdserve.api.v1.AbortRequest;
import dev.pdserve.api.v1.AbortResponse;
import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.api.v1.ListModelsRequest;
import dev.pdserve.api.v1.ListModelsResponse;
import dev.pdserve.api.v1.ModelCard;
import dev.pdserve.core.grpc.GrpcErrors;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.router.Router;
import dev.pdserve.router.RouterMetrics;
import dev.pdserve.router.images.ImageIntake;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.UUID;
import org.apache.logging.log4j.ThreadContext;

/** The public gRPC API: translates and delegates to {@link Router}. */
public final class GenerationGrpcService extends GenerationGrpc.GenerationImplBase {
  private final Router router;
  private final String modelName;
  private final ImageIntake images;

  /** The API with the default image intake (inline and data: images, nothing fetched). */
  public GenerationGrpcService(Router router, String modelName) {
    this(router, modelName, ImageIntake.defaults());
  }

  public GenerationGrpcService(Router router, String modelName, ImageIntake images) {
    this.router = router;
    this.modelName = modelName;
    this.images = images;
  }

  @Override
  public void generate(GenerateRequest req, StreamObserver<GenerateResponse> observer) {
    ServerCallStreamObserver<GenerateResponse> out =
        (ServerCallStreamObserver<GenerateResponse>) observer;
    // The request_id field, else the x-request-id header (put into the log context by RequestIds),
    // else a new one.
    String header = ThreadContext.get(LogContext.REQUEST_ID);
    String id =
        !req.getRequestId().isEmpty()
            ? req.getRequestId()
            : header != null && !header.isEmpty() ? header : "req-" + UUID.randomUUID();
    GenerateStream stream = new GenerateStream(router, id, out);
    try {
      // submit reports its own errors on the stream: what lands here failed the conversion
      stream.submit(GenerateRequests.toDomain(id, req, modelName, images));
    } catch (RuntimeException e) {
      router.metrics().rejected(RouterMetrics.reasonOf(e));
      out.onError(GrpcErrors.toException(e));
    }
  }

  @Override
  public void abort(AbortRequest req, StreamObserver<AbortResponse> out) {
    out.onNext(AbortResponse.newBuilder().setFound(router.abort(req.getRequestId())).build());
    out.onCompleted();
  }

  @Override
  public void listModels(ListModelsRequest req, StreamObserver<ListModelsResponse> out) {
    out.onNext(
        ListModelsResponse.newBuilder()
            .addModels(
                ModelCard.newBuilder()
                    .setId(modelName)
                    .setMaxContext(router.model().maxPositions())
                    .setVocabSize(router.model().vocabSize())
                    .setOwnedBy("pdserve"))
            .build());
    out.onCompleted();
  }
}
