package dev.pdserve.prefill;

/** A snapshot of a prefill node's load. */
public record PrefillStats(
    int queuedJobs,
    long queuedPromptTokens,
    long completed,
    long steps,
    int kvFreeBlocks,
    int kvTotalBlocks,
    double lastStepMillis) {}
