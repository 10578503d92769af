package dev.pdserve.router;

import dev.pdserve.core.cluster.NodeDirectory;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.config.NodeRole;
import java.util.List;
import java.util.Optional;

/**
 * The nodes the router routes to, as it reads them: the registry's local view ({@link
 * NodeDirectory}) in a cluster, an in-memory table in tests. Answers from memory, never blocking.
 */
public interface ClusterView {
  /** ACTIVE nodes of {@code role}, ordered by id. */
  List<NodeInfo> active(NodeRole role);

  Optional<NodeInfo> get(String id);

  /** A one-line summary of the nodes of a role, for error messages. */
  String describe(NodeRole role);

  /** The view of the cluster {@code directory} keeps. */
  static ClusterView of(NodeDirectory directory) {
    return new ClusterView() {
      @Override
      public List<NodeInfo> active(NodeRole role) {
        return directory.active(role);
      }

      @Override
      public Optional<NodeInfo> get(String id) {
        return directory.get(id);
      }

      @Override
      public String describe(NodeRole role) {
        return directory.describe(role);
      }
    };
  }
}
