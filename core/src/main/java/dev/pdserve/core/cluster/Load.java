package dev.pdserve.core.cluster;

/**
 * The load figures a node publishes for routing and role-switch decisions.
 *
 * @param queuedPromptTokens prompt tokens waiting for prefill
 * @param runningSequences sequences in the decode batch (or prefills in flight)
 * @param kvFreeBlocks free blocks in the paged KV pool
 * @param kvTotalBlocks all blocks in the paged KV pool
 * @param lastStepMillis duration of the last engine step
 */
public record Load(
    long queuedPromptTokens,
    int runningSequences,
    long kvFreeBlocks,
    long kvTotalBlocks,
    double lastStepMillis) {
  /** A node that has done nothing yet. */
  public static final Load IDLE = new Load(0, 0, 0, 0, 0);

  public Load {
    if (queuedPromptTokens < 0
        || runningSequences < 0
        || kvFreeBlocks < 0
        || kvTotalBlocks < 0
        || kvFreeBlocks > kvTotalBlocks) {
      throw new IllegalArgumentException(
          "load figures must be >= 0 and kvFreeBlocks <= kvTotalBlocks, got "
              + queuedPromptTokens
              + "/"
              + runningSequences
              + "/"
              + kvFreeBlocks
              + "/"
              + kvTotalBlocks);
    }
  }

  /** Fraction of KV blocks in use, 0 when the node has no pool. */
  public double kvOccupancy() {
    return kvTotalBlocks == 0 ? 0 : 1.0 - (double) kvFreeBlocks / kvTotalBlocks;
  }
}
