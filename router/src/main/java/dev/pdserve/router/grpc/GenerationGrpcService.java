package dev.pdserve.router.grpc;

import dev.pdserve.api.v1.AbortRequest;
import dev.pdserve.api.v1.AbortResponse;
import dev.pdserve.api.v1.ChatMessage;
import dev.pdserve.api.v1.Completion;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.api.v1.ListModelsRequest;
import dev.pdserve.api.v1.ListModelsResponse;
import dev.pdserve.api.v1.ModelCard;
import dev.pdserve.api.v1.TokenDelta;
import dev.pdserve.core.grpc.GrpcErrors;
import dev.pdserve.core.grpc.ProtoConversions;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.router.ResponseSink;
import dev.pdserve.router.Router;
import dev.pdserve.router.RouterMetrics;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/** The public gRPC API: translates and delegates to {@link Router}. */
public final class GenerationGrpcService extends GenerationGrpc.GenerationImplBase {
  private final Router router;
  private final String modelName;

  public GenerationGrpcService(Router router, String modelName) {
    this.router = router;
    this.modelName = modelName;
  }

  @Override
  public void generate(
      dev.pdserve.api.v1.GenerateRequest req, StreamObserver<GenerateResponse> observer) {
    ServerCallStreamObserver<GenerateResponse> out =
        (ServerCallStreamObserver<GenerateResponse>) observer;
    // The request_id field, else the x-request-id header (put into the log context by RequestIds),
    // else a new one.
    String header =
        org.apache.logging.log4j.ThreadContext.get(dev.pdserve.core.logging.LogContext.REQUEST_ID);
    String id =
        !req.getRequestId().isEmpty()
            ? req.getRequestId()
            : header != null && !header.isEmpty() ? header : "req-" + UUID.randomUUID();
    AtomicReference<Router.Flight> flight = new AtomicReference<>();
    out.setOnCancelHandler(
        () -> {
          Router.Flight f = flight.get();
          if (f != null) {
            Deadline d = Context.current().getDeadline();
            f.cancel(d != null && d.isExpired() ? "deadline exceeded" : "client cancelled");
          }
        });
    GenerateRequest domain;
    try {
      domain = toDomain(id, req);
    } catch (RuntimeException e) {
      router.metrics().rejected(RouterMetrics.reasonOf(e));
      out.onError(GrpcErrors.toException(e));
      return;
    }
    Deadline deadline = Context.current().getDeadline();
    long deadlineNanos =
        deadline == null ? 0 : System.nanoTime() + deadline.timeRemaining(TimeUnit.NANOSECONDS);
    ResponseSink sink =
        new ResponseSink() {
          private boolean done;

          @Override
          public synchronized void onDelta(int[] tokenIds, String text, float[] logprobs) {
            if (done || out.isCancelled()) {
              return;
            }
            TokenDelta.Builder d = TokenDelta.newBuilder().setText(text);
            for (int t : tokenIds) {
              d.addTokenIds(t);
            }
            for (float lp : logprobs) {
              d.addLogprobs(lp);
            }
            out.onNext(GenerateResponse.newBuilder().setRequestId(id).setDelta(d).build());
          }

          @Override
          public synchronized void onComplete(
              String finishReason,
              String stopReason,
              int promptTokens,
              int completionTokens,
              int cachedTokens) {
            if (done) {
              return;
            }
            done = true;
            if (out.isCancelled()) {
              return;
            }
            Completion c =
                ProtoConversions.completion(
                    finishReason, stopReason, promptTokens, completionTokens, cachedTokens);
            out.onNext(GenerateResponse.newBuilder().setRequestId(id).setCompletion(c).build());
            out.onCompleted();
          }

          @Override
          public synchronized void onError(ServingException error) {
            if (done) {
              return;
            }
            done = true;
            if (!out.isCancelled()) {
              out.onError(GrpcErrors.toException(error));
            }
          }
        };
    try {
      flight.set(router.submit(domain, sink, deadlineNanos));
    } catch (ServingException e) {
      sink.onError(e); // counted by the router
      return;
    } catch (RuntimeException e) {
      router.metrics().rejected(RouterMetrics.REJECT_INVALID_ARGUMENT);
      sink.onError(new ServingException(ServingException.Kind.INVALID_ARGUMENT, e.getMessage(), e));
      return;
    }
    if (out.isCancelled()) {
      flight.get().cancel("client cancelled");
    }
  }

  private GenerateRequest toDomain(String id, dev.pdserve.api.v1.GenerateRequest req) {
    if (!req.getModel().isEmpty() && !req.getModel().equals(modelName)) {
      throw ServingException.notFound(
          "model '"
              + req.getModel()
              + "' is not served here; this cluster serves '"
              + modelName
              + "' (see ListModels)");
    }
    Prompt prompt =
        switch (req.getInputCase()) {
          case MESSAGES -> {
            List<dev.pdserve.model.tokenizer.ChatMessage> msgs = new ArrayList<>();
            for (ChatMessage m : req.getMessages().getMessagesList()) {
              msgs.add(new dev.pdserve.model.tokenizer.ChatMessage(m.getRole(), m.getContent()));
            }
            yield new Prompt.Messages(msgs);
          }
          case PROMPT -> new Prompt.Text(req.getPrompt());
          case PROMPT_TOKEN_IDS ->
              new Prompt.Tokens(
                  req.getPromptTokenIds().getIdsList().stream()
                      .mapToInt(Integer::intValue)
                      .toArray());
          case INPUT_NOT_SET ->
              throw ServingException.invalid(
                  "the request has no input: set one of messages, prompt or prompt_token_ids");
        };
    SamplingParams params = ProtoConversions.sampling(req.getParams());
    return new GenerateRequest(
        id, prompt, params, !req.hasEnableThinking() || req.getEnableThinking());
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
