package dev.pdserve.expert.grpc;

import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.grpc.GrpcServer;
import dev.pdserve.expert.ExpertShard;
import java.io.IOException;

/**
 * An expert shard's gRPC server: {@code ExpertService} and {@code NodeService} over one {@link
 * ExpertShard}, with health ({@code pdserve.expert}) and reflection from {@link GrpcServer}.
 *
 * <p>Inbound message size: dispatches carry hidden states as protobuf bytes, {@code rows × hidden ×
 * 4} bytes plus ids and weights — a 1,024-token prefill at hidden 2560 is 10 MiB, a 4k-token one 40
 * MiB — so the limit is raised from gRPC's 4 MiB to {@link #DEFAULT_MAX_INBOUND_BYTES} (256 MiB)
 * unless the caller chooses another. Callers ({@code RemoteExperts}) set the same limit for the
 * float64 answers, which are twice the size of the request's hidden states.
 */
public final class ExpertShardServer implements AutoCloseable {
  public static final int DEFAULT_MAX_INBOUND_BYTES = 256 << 20;

  private final ExpertShard shard;
  private final GrpcServer server;

  /**
   * @param server a configured builder (Netty on some address, port 0 in tests, or in-process);
   *     this adds the services, the health name and the inbound limit
   * @param maxInboundMessageBytes largest dispatch accepted
   */
  public ExpertShardServer(
      ExpertShard shard, GrpcServer.Builder server, int maxInboundMessageBytes) {
    this(shard, server, maxInboundMessageBytes, "");
  }

  /** As above; {@code metricsUrl} is reported by the Status RPC ({@code metrics_url}). */
  public ExpertShardServer(
      ExpertShard shard, GrpcServer.Builder server, int maxInboundMessageBytes, String metricsUrl) {
    this.shard = shard;
    this.server =
        server
            .addService(new ExpertShardService(shard))
            .addService(new ExpertStatusService(shard, metricsUrl))
            .healthService(NodeRole.EXPERT.healthServiceName())
            .maxInboundMessageBytes(maxInboundMessageBytes)
            .build();
  }

  /** A Netty server on {@code host:port} (0 = any free port) with the default inbound limit. */
  public static ExpertShardServer onAddress(ExpertShard shard, String host, int port) {
    return new ExpertShardServer(
        shard,
        GrpcServer.forAddress(host, port).name("expert-" + shard.id()),
        DEFAULT_MAX_INBOUND_BYTES);
  }

  public ExpertShardServer start() throws IOException {
    server.start();
    return this;
  }

  /** The bound port; -1 for in-process servers or before {@link #start()}. */
  public int port() {
    return server.port();
  }

  public ExpertShard shard() {
    return shard;
  }

  public GrpcServer grpc() {
    return server;
  }

  /**
   * Stops the server (running dispatches get the grace period). The shard is the caller's to close.
   */
  @Override
  public void close() {
    server.close();
  }
}
