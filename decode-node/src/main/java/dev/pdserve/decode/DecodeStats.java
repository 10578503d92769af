package dev.pdserve.decode;

/**
 * A snapshot of a decode node's load and batching.
 *
 * @param reservedBlocks KV blocks held by reservations (reserved, waiting for their KV, or running)
 */
public record DecodeStats(
    int running,
    int waitingForKv,
    int reservations,
    int kvFreeBlocks,
    int kvTotalBlocks,
    long steps,
    long tokens,
    int maxBatchSeen,
    double meanBatch,
    double lastStepMillis,
    int reservedBlocks) {}
