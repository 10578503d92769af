package dev.pdserve.core.experts;

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

  /** The registry's current entry for the shard (its advertised gRPC address). */
  static ShardDirectory registry(NodeRegistry registry) {
    return id -> registry.get(id).map(NodeInfo::grpcAddress).filter(a -> !a.isEmpty());
  }
}
