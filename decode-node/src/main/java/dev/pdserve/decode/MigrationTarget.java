package dev.pdserve.decode;

import dev.pdserve.core.kv.KvEndpoint;

/**
 * A reservation on another decode node that a migrating sequence's KV is pushed into.
 *
 * @param nodeId the target node
 * @param grpcAddress its gRPC address (where the router continues the stream)
 * @param transferId the reservation (and KV transfer) id on the target
 * @param kvEndpoint where the target receives KV pushes
 */
public record MigrationTarget(
    String nodeId, String grpcAddress, String transferId, KvEndpoint kvEndpoint) {}
