package dev.pdserve.router;

import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

/** A {@link ClusterView} over a table the test fills, answering as the registry's view does. */
final class InMemoryCluster implements ClusterView {
  private final Map<String, NodeInfo> nodes = new ConcurrentHashMap<>();

  /** Adds an ACTIVE node of {@code role} at {@code <id>:50051}. */
  NodeInfo add(String id, NodeRole role) {
    NodeInfo n =
        new NodeInfo(
            id, role, NodeState.ACTIVE, 1, "", id + ":50051", id + ":47470", "", Load.IDLE, 0);
    nodes.put(id, n);
    return n;
  }

  void setState(String id, NodeState state) {
    NodeInfo n = nodes.get(id);
    nodes.put(id, n.withTransition(n.role(), state, n.epoch() + 1, 0));
  }

  /** The load {@code id} reports, as the registry would publish it. */
  void setLoad(String id, Load load) {
    NodeInfo n = nodes.get(id);
    nodes.put(id, n.withLoad(load, 0));
  }

  void remove(String id) {
    nodes.remove(id);
  }

  @Override
  public List<NodeInfo> active(NodeRole role) {
    List<NodeInfo> out = new ArrayList<>();
    for (NodeInfo n : nodes.values()) {
      if (n.role() == role && n.state() == NodeState.ACTIVE) {
        out.add(n);
      }
    }
    out.sort(Comparator.comparing(NodeInfo::id));
    return out;
  }

  @Override
  public Optional<NodeInfo> get(String id) {
    return Optional.ofNullable(nodes.get(id));
  }

  @Override
  public String describe(NodeRole role) {
    List<String> parts = new ArrayList<>();
    nodes.values().stream()
        .filter(n -> n.role() == role)
        .sorted(Comparator.comparing(NodeInfo::id))
        .forEach(n -> parts.add(n.id() + "=" + n.state()));
    return parts.isEmpty() ? "none registered" : String.join(", ", parts);
  }
}
