package dev.pdserve.launcher.node;

/**
 * What a node's shutdown drain did.
 *
 * @param node the node id
 * @param running requests or sequences running when it began
 * @param queued requests waiting when it began (not started, or waiting for their KV)
 * @param finished ended normally on this node while it drained
 * @param migrated decode sequences handed to another decode node
 * @param failed ended with an error (UNAVAILABLE) because the timeout ran out
 * @param elapsedMillis from the start of the drain to the node being closed
 */
public record DrainSummary(
    String node,
    int running,
    int queued,
    int finished,
    int migrated,
    int failed,
    long elapsedMillis) {

  /** The end-of-drain log line's text. */
  String describe() {
    return "drained: "
        + finished
        + " finished, "
        + migrated
        + " migrated, "
        + failed
        + " failed, elapsed "
        + elapsedMillis
        + " ms (node "
        + node
        + ")";
  }
}
