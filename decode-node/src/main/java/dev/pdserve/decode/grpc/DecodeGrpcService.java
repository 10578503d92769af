package dev.pdserve.decode.grpc;

import dev.pdserve.core.grpc.GrpcErrors;
import dev.pdserve.core.grpc.ProtoConversions;
import dev.pdserve.core.kv.KvEndpoint;
import dev.pdserve.decode.DecodeEngine;
import dev.pdserve.decode.JoinRequest;
import dev.pdserve.decode.Migration;
import dev.pdserve.decode.Reservation;
import dev.pdserve.decode.TokenSink;
import dev.pdserve.internal.v1.DecodeRequest;
import dev.pdserve.internal.v1.DecodeServiceGrpc;
import dev.pdserve.internal.v1.Migrated;
import dev.pdserve.internal.v1.ReleaseRequest;
import dev.pdserve.internal.v1.ReleaseResponse;
import dev.pdserve.internal.v1.RenewLeasesRequest;
import dev.pdserve.internal.v1.RenewLeasesResponse;
import dev.pdserve.internal.v1.ReserveRequest;
import dev.pdserve.internal.v1.ReserveResponse;
import dev.pdserve.internal.v1.TokenEvent;
import dev.pdserve.model.engine.Emission;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.List;
import java.util.function.Supplier;

/**
 * gRPC adapter of the decode role: translates and delegates to {@link DecodeEngine}. A sequence's
 * 3-D rotary delta comes in with {@code Decode} and goes out with {@code Migrated}; a local
 * prefill's images come in as files (checked here for size only), and one the node cannot use fails
 * the stream with INVALID_ARGUMENT naming it ({@code images[k]: ...}).
 */
public final class DecodeGrpcService extends DecodeServiceGrpc.DecodeServiceImplBase {
  private final DecodeEngine engine;
  private final Supplier<KvEndpoint> kvEndpoint;
  private final long maxImageBytes;

  /**
   * @param kvEndpoint where this node receives KV pushes, as reservations advertise it (read per
   *     reservation: the endpoint's port is known once it started)
   * @param maxImageBytes the largest image file taken: the server's {@code
   *     pdserve.grpc.max-inbound-bytes}
   */
  public DecodeGrpcService(
      DecodeEngine engine, Supplier<KvEndpoint> kvEndpoint, long maxImageBytes) {
    this.engine = engine;
    this.kvEndpoint = kvEndpoint;
    this.maxImageBytes = maxImageBytes;
  }

  @Override
  public void reserve(ReserveRequest req, StreamObserver<ReserveResponse> out) {
    try {
      Reservation r = engine.reserve(req.getRequestId(), req.getPromptTokens(), req.getMaxTokens());
      KvEndpoint kv = kvEndpoint.get();
      out.onNext(
          ReserveResponse.newBuilder()
              .setTransferId(r.transferId())
              .setFlightHost(kv.host())
              .setFlightPort(kv.port())
              .setBlocks(r.blocks().length)
              .setLeaseMillis(engine.leaseMillis())
              .build());
      out.onCompleted();
    } catch (RuntimeException e) {
      out.onError(GrpcErrors.toException(e));
    }
  }

  @Override
  public void release(ReleaseRequest req, StreamObserver<ReleaseResponse> out) {
    out.onNext(
        ReleaseResponse.newBuilder().setReleased(engine.release(req.getTransferId())).build());
    out.onCompleted();
  }

  @Override
  public void renewLeases(RenewLeasesRequest req, StreamObserver<RenewLeasesResponse> out) {
    out.onNext(
        RenewLeasesResponse.newBuilder()
            .addAllUnknownTransferIds(engine.renewLeases(req.getTransferIdsList()))
            .setLeaseMillis(engine.leaseMillis())
            .build());
    out.onCompleted();
  }

  @Override
  public void decode(DecodeRequest req, StreamObserver<TokenEvent> observer) {
    ServerCallStreamObserver<TokenEvent> out = (ServerCallStreamObserver<TokenEvent>) observer;
    String requestId = req.getRequestId();
    int[] prompt = req.getPromptTokenIdsList().stream().mapToInt(Integer::intValue).toArray();
    boolean logprobs = req.getParams().hasLogprobs() && req.getParams().getLogprobs() > 0;
    JoinRequest join;
    try {
      join =
          new JoinRequest(
              requestId,
              req.getTransferId(),
              prompt,
              req.getFirstToken(),
              req.getFirstLogprob(),
              ProtoConversions.sampling(req.getParams()),
              req.getSeed(),
              req.getCachedTokens(),
              req.getLocalPrefill(),
              positionDelta(req),
              req.getLocalPrefill()
                  ? ProtoConversions.promptImages(req.getImagesList(), maxImageBytes)
                  : List.of());
    } catch (RuntimeException e) {
      out.onError(GrpcErrors.toException(e));
      return;
    }
    out.setOnCancelHandler(() -> engine.cancel(requestId));
    int[] resumed = req.getGeneratedTokenIdsList().stream().mapToInt(Integer::intValue).toArray();
    TokenSink sink =
        new TokenSink() {
          private int generated = resumed.length;
          private boolean done;

          @Override
          public synchronized void onToken(Emission e) {
            if (done) {
              return;
            }
            if (e.tokenId() >= 0) {
              generated++;
            }
            if (!e.text().isEmpty() || e.tokenId() >= 0) {
              out.onNext(
                  TokenEvent.newBuilder().setDelta(ProtoConversions.delta(e, logprobs)).build());
            }
            if (e.finished()) {
              done = true;
              out.onNext(
                  TokenEvent.newBuilder()
                      .setCompletion(
                          ProtoConversions.completion(
                              e.finish().wireName(),
                              e.stopReason(),
                              prompt.length,
                              generated,
                              req.getCachedTokens()))
                      .build());
              out.onCompleted();
            }
          }

          @Override
          public synchronized void onMigrated(Migration m) {
            if (done) {
              return;
            }
            done = true;
            Migrated.Builder b =
                Migrated.newBuilder()
                    .setTargetNodeId(m.target().nodeId())
                    .setTargetGrpcAddress(m.target().grpcAddress())
                    .setTransferId(m.target().transferId())
                    .setTokensEmitted(m.tokensEmitted())
                    .setPositionDelta(m.positionDelta());
            for (int id : m.generatedIds()) {
              b.addGeneratedTokenIds(id);
            }
            out.onNext(TokenEvent.newBuilder().setMigrated(b).build());
            out.onCompleted();
          }

          @Override
          public synchronized void onError(Throwable t) {
            if (done) {
              return;
            }
            done = true;
            if (!out.isCancelled()) {
              out.onError(GrpcErrors.toException(t));
            }
          }
        };
    try {
      if (resumed.length > 0) {
        engine.resume(join, resumed, sink);
      } else {
        engine.join(join, sink);
      }
    } catch (RuntimeException e) {
      sink.onError(e);
    }
  }

  private static int positionDelta(DecodeRequest req) {
    long d = req.getPositionDelta();
    if (d != (int) d) {
      throw new IllegalArgumentException(
          "position_delta of request " + req.getRequestId() + " is out of range: " + d);
    }
    return (int) d;
  }
}
