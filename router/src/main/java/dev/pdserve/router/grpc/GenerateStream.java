package dev.pdserve.router.grpc;

import dev.pdserve.api.v1.Completion;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.TokenDelta;
import dev.pdserve.core.grpc.GrpcErrors;
import dev.pdserve.core.grpc.ProtoConversions;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.router.InFlightRequest;
import dev.pdserve.router.ResponseSink;
import dev.pdserve.router.Router;
import dev.pdserve.router.RouterMetrics;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.stub.ServerCallStreamObserver;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * One {@code Generate} call's response stream: the request's output as {@link GenerateResponse}s,
 * then its completion or error, each sent once; a client cancel (or the call's deadline) cancels
 * the request.
 */
final class GenerateStream implements ResponseSink {
  private final Router router;
  private final String id;
  private final ServerCallStreamObserver<GenerateResponse> out;
  private final AtomicReference<InFlightRequest> flight = new AtomicReference<>();
  private boolean done; // guarded by this

  /** Listens for the client's cancel at once (before the request is submitted). */
  GenerateStream(Router router, String id, ServerCallStreamObserver<GenerateResponse> out) {
    this.router = router;
    this.id = id;
    this.out = out;
    out.setOnCancelHandler(
        () -> {
          InFlightRequest f = flight.get();
          if (f != null) {
            Deadline d = Context.current().getDeadline();
            f.cancel(d != null && d.isExpired() ? "deadline exceeded" : "client cancelled");
          }
        });
  }

  /**
   * Submits {@code request} to the router with the call's deadline (on the router's clock); a
   * refusal ends the stream with its error.
   */
  void submit(GenerateRequest request) {
    Deadline deadline = Context.current().getDeadline();
    long deadlineNanos =
        deadline == null
            ? 0
            : router.ticker().read() + deadline.timeRemaining(TimeUnit.NANOSECONDS);
    try {
      flight.set(router.submit(request, this, deadlineNanos));
    } catch (ServingException e) {
      onError(e); // counted by the router
      return;
    } catch (RuntimeException e) {
      router.metrics().rejected(RouterMetrics.REJECT_INVALID_ARGUMENT);
      onError(new ServingException(ServingException.Kind.INVALID_ARGUMENT, e.getMessage(), e));
      return;
    }
    if (out.isCancelled()) {
      flight.get().cancel("client cancelled");
    }
  }

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
}
