package dev.pdserve.core.config;

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
 */
public record NetworkSettings(
    String bindHost, String advertisedHost, int grpcPort, int flightPort, int metricsPort, int grpcMaxInboundBytes, int httpPort) {}
