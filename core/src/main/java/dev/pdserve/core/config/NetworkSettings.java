package dev.pdserve.core.config;

import java.util.Optional;

/**
 * Where a node listens and how others reach it.
 *
 * @param bindHost interface the servers bind to ({@code 127.0.0.1} by default; {@code 0.0.0.0} for
 *     all interfaces)
 * @param advertisedHost host other nodes use to reach this one (defaults to the bind host)
 * @param grpcPort gRPC port, 0 = any free port
 * @param flightPort Arrow Flight port, 0 = any free port
 * @param metricsPort metrics/HTTP port, 0 = any free port
 * @param grpcMaxInboundBytes largest gRPC message this node accepts
 * @param httpPort the router's OpenAI-compatible HTTP API port, 0 = any free port
 * @param httpMaxBodyBytes largest HTTP request body the router's HTTP API accepts (larger: 413)
 * @param grpcHealthPort a plaintext port serving only gRPC health (Kubernetes probes under TLS), 0
 *     = any free port; empty = none
 */
public record NetworkSettings(
    String bindHost,
    String advertisedHost,
    int grpcPort,
    int flightPort,
    int metricsPort,
    int grpcMaxInboundBytes,
    int httpPort,
    int httpMaxBodyBytes,
    Optional<Integer> grpcHealthPort) {
  /**
   * The default of {@link #grpcMaxInboundBytes}: 32 MiB, so a prompt with the router's default
   * image allowance (8 images of at most 3 MiB) and its text fits one message.
   */
  public static final int DEFAULT_GRPC_MAX_INBOUND_BYTES = 32 << 20;

  /**
   * The default of {@link #httpMaxBodyBytes}: 48 MiB, the same allowance as data: URLs (base64
   * makes 24 MiB of images 32 MiB of JSON) with room for the messages.
   */
  public static final int DEFAULT_HTTP_MAX_BODY_BYTES = 48 << 20;

  /** Settings without the router's HTTP API fields: any free HTTP port, default-size bodies. */
  public NetworkSettings(
      String bindHost,
      String advertisedHost,
      int grpcPort,
      int flightPort,
      int metricsPort,
      int grpcMaxInboundBytes) {
    this(
        bindHost,
        advertisedHost,
        grpcPort,
        flightPort,
        metricsPort,
        grpcMaxInboundBytes,
        0,
        DEFAULT_HTTP_MAX_BODY_BYTES,
        Optional.empty());
  }
}
