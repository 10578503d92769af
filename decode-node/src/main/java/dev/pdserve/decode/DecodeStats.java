package dev.pdserve.decode;

/** A snapshot of a decode node's load and batching. */
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
    double lastStepMillis) {}
