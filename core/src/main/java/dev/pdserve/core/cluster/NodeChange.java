package dev.pdserve.core.cluster;

/**
 * A change to the registry, delivered to {@link NodeRegistry#addListener} listeners.
 *
 * @param kind what happened
 * @param id node id
 * @param previous the entry before (null when added)
 * @param current the entry after (null when removed)
 */
public record NodeChange(Kind kind, String id, NodeInfo previous, NodeInfo current) {
  public enum Kind {
    ADDED,
    UPDATED,
    REMOVED
  }
}
