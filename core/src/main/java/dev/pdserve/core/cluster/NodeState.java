package dev.pdserve.core.cluster;

/** Lifecycle of a node's registry entry. The router routes only to {@link #ACTIVE} nodes. */
public enum NodeState {
  /** Registered, loading weights or warming up; not routable yet. */
  STARTING,
  /** Serving its role. */
  ACTIVE,
  /** Finishing (or migrating) its work before a role switch or shutdown; takes nothing new. */
  DRAINING,
  /** Changing role; not routable. */
  SWITCHING,
  /** Shut down (or about to); not routable. */
  STOPPED
}
