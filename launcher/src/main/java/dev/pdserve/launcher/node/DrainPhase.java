package dev.pdserve.launcher.node;

/**
 * The steps of a node's shutdown drain, in order, as reported to {@code onDrainPhase} listeners
 * (synchronously, on the draining thread, when the step begins).
 */
public enum DrainPhase {
  /**
   * Readiness health names report NOT_SERVING (the overall service {@code ""} stays SERVING); the
   * registry entry is DRAINING and new work is refused. The node still serves what it holds.
   */
  DRAINING,
  /** A decode worker hands the sequences still running to other decode nodes. */
  MIGRATING,
  /** The drain is over (or its time is up): deregistered, leftovers ended, servers closing. */
  CLOSING
}
