package dev.pdserve.launcher.node;

/**
 * The steps of one shutdown drain that are a node kind's own. {@link NodeRuntime#drainAndClose}
 * runs the sequence every node shares around them: {@link #stopServing}, {@link #held}, the {@code
 * draining:} log line, the registry entry DRAINING, {@link #refuseNewWork}, phase DRAINING, {@link
 * #awaitWork}, phase CLOSING, the entry removed, {@link #tally}, then everything closes in its
 * {@link Closer.Stage} order (engines end what is left, servers stop, the member leaves) and the
 * {@code drained:} line is logged. Each method is called once, in that order, on the draining
 * thread.
 */
interface NodeDrain {
  /** How the node is named in the drain's first log line, e.g. {@code worker d0, role decode}. */
  String describe();

  /**
   * Readiness health names go NOT_SERVING (the overall {@code ""} stays SERVING until the server
   * stops) and what the kind refuses from the start of a drain is refused.
   */
  void stopServing();

  /** What the node holds as the drain begins. */
  Held held();

  /**
   * The registry entry is DRAINING (routers stop choosing this node): refuse what may still arrive
   * from those that chose it before.
   */
  void refuseNewWork();

  /**
   * Lets what the node holds finish (or move elsewhere) within {@code deadline}.
   *
   * @param migrating to call when work starts moving to other nodes (phase MIGRATING)
   */
  void awaitWork(Deadline deadline, Runnable migrating);

  /** Once deregistered, before what is left is ended: how the drain went. */
  Tally tally(Held atStart);

  /** Requests or sequences running, and waiting (not started, or waiting for their KV). */
  record Held(int running, int queued) {}

  /**
   * @param finished ended normally on this node while it drained
   * @param migrated moved to another node
   * @param failed still held when the drain ended: they end with UNAVAILABLE
   */
  record Tally(int finished, int migrated, int failed) {
    /** Everything held at the start that will not fail finished (nothing moves). */
    static Tally allButFailed(Held atStart, int failed) {
      return new Tally(Math.max(0, atStart.running() + atStart.queued() - failed), 0, failed);
    }
  }
}
