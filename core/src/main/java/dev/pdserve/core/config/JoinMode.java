package dev.pdserve.core.config;

/** How a node finds the other Hazelcast members. Multicast is never used. */
public enum JoinMode {
  /** A fixed member list, {@code host:port} entries listed one by one. */
  TCPIP,
  /** DNS lookup of a Kubernetes headless Service (Hazelcast's built-in kubernetes join). */
  KUBERNETES,
  /** A single-member cluster: no join at all. */
  NONE
}
