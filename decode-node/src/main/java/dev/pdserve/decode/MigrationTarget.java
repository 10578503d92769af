package dev.pdserve.decode;

/**
 * A reservation on another decode node that a migrating sequence's KV is pushed into.
 *
 * @param nodeId the target node
 * @param grpcAddress its gRPC address (where the router continues the stream)
 * @param transferId the reservation (and KV transfer) id on the target
 * @param flightHost where the target receives KV over Arrow Flight
 * @param flightPort its Flight port
 */
public record MigrationTarget(
    String nodeId, String grpcAddress, String transferId, String flightHost, int flightPort) {}
