package dev.pdserve.prefill;

/**
 * A snapshot of a prefill node's load.
 *
 * @param queuedJobs every job not yet done ({@code runningJobs + waitingJobs})
 * @param runningJobs jobs holding KV: computing, or waiting for the decode node to take their KV
 * @param waitingJobs jobs queued that have not started
 */
public record PrefillStats(
    int queuedJobs,
    long queuedPromptTokens,
    long completed,
    long steps,
    int kvFreeBlocks,
    int kvTotalBlocks,
    double lastStepMillis,
    int runningJobs,
    int waitingJobs) {}
