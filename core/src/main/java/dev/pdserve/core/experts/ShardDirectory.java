package dev.pdserve.core.experts;

import dev.pdserve.core.cluster.NodeDirectory;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeRegistry;
import java.util.Map;
import java.util.Optional;

/** Where an expert shard listens: shard node id → gRPC {@code host:port}. */
@FunctionalInterface
public interface ShardDirectory {
  /** The shard's gRPC address, or empty when it is unknown (not registered, or gone). */
  Optional<String> address(String shardId);

  /** A fixed map (tests, static topologies). */
  static ShardDirectory of(Map<String, String> addresses) {
    Map<String, String> copy = Map.copyOf(addresses);
    return id -> Optional.ofNullable(copy.get(id));
  }

  /**
   * The shard's address from a local, event-fed view of the registry: no cluster round trip per
   * dispatch (the form workers use).
   */
  static ShardDirectory directory(NodeDirectory nodes) {
    return id -> nodes.get(id).map(NodeInfo::grpcAddress).filter(a -> !a.isEmpty());
  }

  /**
   * The registry's current entry for the shard (its advertised gRPC address); one map read per
   * call.
   */
  static ShardDirectory registry(NodeRegistry registry) {
    return id -> registry.get(id).map(NodeInfo::grpcAddress).filter(a -> !a.isEmpty());
  }
}
