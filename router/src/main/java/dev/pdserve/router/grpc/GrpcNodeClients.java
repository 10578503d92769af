package dev.pdserve.router.grpc;

import com.google.common.base.Ticker;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.grpc.Channels;
import dev.pdserve.core.grpc.GrpcErrors;
import dev.pdserve.core.grpc.ProtoConversions;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.internal.v1.DecodeRequest;
import dev.pdserve.internal.v1.DecodeServiceGrpc;
import dev.pdserve.internal.v1.PrefillRequest;
import dev.pdserve.internal.v1.PrefillResponse;
import dev.pdserve.internal.v1.PrefillServiceGrpc;
import dev.pdserve.internal.v1.ReleaseRequest;
import dev.pdserve.internal.v1.ReleaseResponse;
import dev.pdserve.internal.v1.RenewLeasesRequest;
import dev.pdserve.internal.v1.RenewLeasesResponse;
import dev.pdserve.internal.v1.ReserveRequest;
import dev.pdserve.internal.v1.ReserveResponse;
import dev.pdserve.internal.v1.TokenEvent;
import dev.pdserve.router.NodeClients;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.Status;
import io.grpc.stub.AbstractStub;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * {@link NodeClients} over gRPC stubs on cached channels: each call record becomes its internal
 * request proto. Deadlines are read against {@code ticker}, the router's clock. A call whose node
 * is gone — it died (the connection closed), shut down mid-call (it reset the stream), or the
 * connection broke — fails with UNAVAILABLE, which the router reads as "the node is gone".
 */
public final class GrpcNodeClients implements NodeClients {
  /** The longest a KV reservation may take before the node counts as unavailable. */
  static final Duration RESERVE_TIMEOUT = Duration.ofSeconds(10);

  /** How grpc-netty describes a stream the peer reset. */
  static final String RESET_BY_PEER = "RST_STREAM closed stream";

  private final Channels channels;
  private final Ticker ticker;

  public GrpcNodeClients(Channels channels, Ticker ticker) {
    this.channels = channels;
    this.ticker = ticker;
  }

  private <S extends AbstractStub<S>> S withDeadline(S stub, long deadlineNanos) {
    if (deadlineNanos == 0) {
      return stub;
    }
    return stub.withDeadline(
        Deadline.after(Math.max(1, deadlineNanos - ticker.read()), TimeUnit.NANOSECONDS));
  }

  /**
   * A failed call as a {@link ServingException} of its status class — except a call the node reset
   * (HTTP/2 RST_STREAM, which gRPC reports as CANCELLED although nobody here cancelled it: the
   * server shut down mid-call, or the connection under it broke), which is the node going away:
   * UNAVAILABLE. A cancel of the router's own reaches its listener with the router's reason
   * instead.
   */
  static ServingException failure(Throwable t, NodeInfo node, String what) {
    Status s = Status.fromThrowable(t);
    String context = what + " on " + node.role().name().toLowerCase() + " node " + node.id();
    if (s.getCode() == Status.Code.CANCELLED
        && s.getDescription() != null
        && s.getDescription().startsWith(RESET_BY_PEER)) {
      return ServingException.unavailable(
          context
              + ": the node reset the call ("
              + s.getDescription()
              + "); it shut down or its connection broke",
          s.getCause());
    }
    return GrpcErrors.fromCall(t, context);
  }

  @Override
  public CompletableFuture<Reserved> reserve(NodeInfo decode, ReserveCall call) {
    CompletableFuture<Reserved> f = new CompletableFuture<>();
    // A reservation is quick; a node that does not answer within the bound is skipped like one
    // that is down (not left to hang the request until its own deadline, or forever).
    long bound = ticker.read() + RESERVE_TIMEOUT.toNanos();
    long deadline = call.deadlineNanos();
    boolean boundFirst = deadline == 0 || bound - deadline < 0;
    ReserveRequest req =
        ReserveRequest.newBuilder()
            .setRequestId(call.requestId())
            .setPromptTokens(call.promptTokens())
            .setMaxTokens(call.maxTokens())
            .build();
    Context.ROOT.run(
        () ->
            withDeadline(
                    DecodeServiceGrpc.newStub(channels.get(decode.grpcAddress())),
                    boundFirst ? bound : deadline)
                .reserve(
                    req,
                    new StreamObserver<>() {
                      @Override
                      public void onNext(ReserveResponse r) {
                        f.complete(
                            new Reserved(
                                r.getTransferId(),
                                r.getFlightHost(),
                                r.getFlightPort(),
                                r.getLeaseMillis()));
                      }

                      @Override
                      public void onError(Throwable t) {
                        Status s = Status.fromThrowable(t);
                        if (boundFirst && s.getCode() == Status.Code.DEADLINE_EXCEEDED) {
                          f.completeExceptionally(
                              ServingException.unavailable(
                                  "decode node "
                                      + decode.id()
                                      + " did not answer the KV reservation within "
                                      + RESERVE_TIMEOUT.toSeconds()
                                      + " s"));
                        } else {
                          f.completeExceptionally(failure(t, decode, "KV reservation"));
                        }
                      }

                      @Override
                      public void onCompleted() {}
                    }));
    return f;
  }

  @Override
  public void release(NodeInfo decode, String transferId) {
    Context.ROOT.run(
        () ->
            DecodeServiceGrpc.newStub(channels.get(decode.grpcAddress()))
                .withDeadlineAfter(10, TimeUnit.SECONDS)
                .release(
                    ReleaseRequest.newBuilder().setTransferId(transferId).build(),
                    new StreamObserver<ReleaseResponse>() {
                      @Override
                      public void onNext(ReleaseResponse value) {}

                      @Override
                      public void onError(Throwable t) {}

                      @Override
                      public void onCompleted() {}
                    }));
  }

  @Override
  public CompletableFuture<List<String>> renewLeases(NodeInfo decode, List<String> transferIds) {
    CompletableFuture<List<String>> f = new CompletableFuture<>();
    Context.ROOT.run(
        () ->
            DecodeServiceGrpc.newStub(channels.get(decode.grpcAddress()))
                .withDeadlineAfter(5, TimeUnit.SECONDS)
                .renewLeases(
                    RenewLeasesRequest.newBuilder().addAllTransferIds(transferIds).build(),
                    new StreamObserver<RenewLeasesResponse>() {
                      @Override
                      public void onNext(RenewLeasesResponse r) {
                        f.complete(r.getUnknownTransferIdsList());
                      }

                      @Override
                      public void onError(Throwable t) {
                        f.completeExceptionally(failure(t, decode, "lease renewal"));
                      }

                      @Override
                      public void onCompleted() {}
                    }));
    return f;
  }

  @Override
  public boolean supportsLocalPrefill() {
    return true;
  }

  @Override
  public CompletableFuture<FirstToken> prefill(
      NodeInfo prefill, PrefillCall call, Consumer<Call> onCall) {
    CompletableFuture<FirstToken> f = new CompletableFuture<>();
    Reserved target = call.target();
    PrefillRequest.Builder req =
        PrefillRequest.newBuilder()
            .setRequestId(call.requestId())
            .setParams(ProtoConversions.sampling(call.params()))
            .setSeed(call.seed())
            .setTransferId(target.transferId())
            .setFlightHost(target.flightHost())
            .setFlightPort(target.flightPort());
    for (int t : call.prompt()) {
      req.addPromptTokenIds(t);
    }
    call.images().forEach(i -> req.addImages(ProtoConversions.promptImage(i)));
    Context.CancellableContext ctx = Context.ROOT.withCancellation();
    onCall.accept(why -> ctx.cancel(Status.CANCELLED.withDescription(why).asRuntimeException()));
    ctx.run(
        () ->
            withDeadline(
                    PrefillServiceGrpc.newStub(channels.get(prefill.grpcAddress())),
                    call.deadlineNanos())
                .prefill(
                    req.build(),
                    new StreamObserver<>() {
                      @Override
                      public void onNext(PrefillResponse r) {
                        f.complete(
                            new FirstToken(
                                r.getFirstToken(),
                                r.getFirstLogprob(),
                                r.getCachedTokens(),
                                r.getKvBytes(),
                                r.getCachedPromptBlocks()));
                      }

                      @Override
                      public void onError(Throwable t) {
                        f.completeExceptionally(failure(t, prefill, "prefill"));
                      }

                      @Override
                      public void onCompleted() {
                        ctx.close();
                      }
                    }));
    return f;
  }

  @Override
  public Call decode(NodeInfo decode, DecodeCall call, DecodeListener listener) {
    DecodeRequest.Builder req =
        DecodeRequest.newBuilder()
            .setRequestId(call.requestId())
            .setTransferId(call.reservation().transferId())
            .setParams(ProtoConversions.sampling(call.params()))
            .setSeed(call.seed());
    FirstToken first = call.first();
    if (call.localPrefill()) {
      req.setLocalPrefill(true);
    } else {
      req.setFirstToken(first.token())
          .setFirstLogprob((float) first.logprob())
          .setCachedTokens(first.cachedTokens());
    }
    for (int t : call.prompt()) {
      req.addPromptTokenIds(t);
    }
    call.images().forEach(i -> req.addImages(ProtoConversions.promptImage(i)));
    req.setPositionDelta(call.positionDelta());
    return startDecode(decode, req.build(), call.deadlineNanos(), listener);
  }

  @Override
  public Call resume(NodeInfo decode, ResumeCall call, DecodeListener listener) {
    int[] generated = call.generated();
    DecodeRequest.Builder req =
        DecodeRequest.newBuilder()
            .setRequestId(call.requestId())
            .setTransferId(call.reservation().transferId())
            .setFirstToken(generated[0])
            .setParams(ProtoConversions.sampling(call.params()))
            .setSeed(call.seed())
            .setLocalPrefill(call.localPrefill());
    for (int t : call.prompt()) {
      req.addPromptTokenIds(t);
    }
    for (int t : generated) {
      req.addGeneratedTokenIds(t);
    }
    call.images().forEach(i -> req.addImages(ProtoConversions.promptImage(i)));
    req.setPositionDelta(call.positionDelta());
    return startDecode(decode, req.build(), call.deadlineNanos(), listener);
  }

  private Call startDecode(
      NodeInfo decode, DecodeRequest request, long deadlineNanos, DecodeListener listener) {
    ClientCallStreamObserver<?>[] holder = new ClientCallStreamObserver<?>[1];
    Context.ROOT.run(
        () ->
            withDeadline(
                    DecodeServiceGrpc.newStub(channels.get(decode.grpcAddress())), deadlineNanos)
                .decode(
                    request,
                    new ClientResponseObserver<DecodeRequest, TokenEvent>() {
                      private boolean ended;

                      @Override
                      public void beforeStart(ClientCallStreamObserver<DecodeRequest> stream) {
                        holder[0] = stream;
                      }

                      @Override
                      public void onNext(TokenEvent e) {
                        if (e.hasDelta()) {
                          var d = e.getDelta();
                          float[] lp = new float[d.getLogprobsCount()];
                          for (int i = 0; i < lp.length; i++) {
                            lp[i] = d.getLogprobs(i);
                          }
                          listener.onDelta(
                              d.getTokenIdsList().stream().mapToInt(Integer::intValue).toArray(),
                              d.getText(),
                              lp);
                        } else if (e.hasCompletion()) {
                          ended = true;
                          var c = e.getCompletion();
                          listener.onComplete(
                              c.getFinishReason(),
                              c.getStopReason().isEmpty() ? null : c.getStopReason(),
                              c.getUsage().getPromptTokens(),
                              c.getUsage().getCompletionTokens(),
                              c.getUsage().getCachedTokens());
                        } else if (e.hasMigrated()) {
                          ended = true;
                          var m = e.getMigrated();
                          listener.onMigrated(
                              new Migrated(
                                  m.getTargetNodeId(),
                                  m.getTargetGrpcAddress(),
                                  m.getTransferId(),
                                  m.getGeneratedTokenIdsList().stream()
                                      .mapToInt(Integer::intValue)
                                      .toArray()));
                        }
                      }

                      @Override
                      public void onError(Throwable t) {
                        if (!ended) {
                          ended = true;
                          listener.onError(failure(t, decode, "decode"));
                        }
                      }

                      @Override
                      public void onCompleted() {
                        if (!ended) {
                          ended = true;
                          listener.onError(
                              ServingException.unavailable(
                                  "decode node "
                                      + decode.id()
                                      + " ended the stream without a completion"));
                        }
                      }
                    }));
    return why -> {
      ClientCallStreamObserver<?> s = holder[0];
      if (s != null) {
        s.cancel(why, null);
      }
    };
  }
}
