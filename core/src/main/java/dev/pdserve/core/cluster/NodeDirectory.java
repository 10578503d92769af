package dev.pdserve.core.cluster;

import dev.pdserve.core.config.NodeRole;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A local, always-answering view of the registry for request routing: filled from the registry
 * once, then kept current by its change events. Routing never blocks on the cluster (a frozen
 * member can stall IMap queries for the heartbeat bound; this view answers from memory).
 */
public final class NodeDirectory implements AutoCloseable {
  private final NodeRegistry registry;
  private final Map<String, NodeInfo> nodes = new ConcurrentHashMap<>();
  private final Subscription subscription;

  public NodeDirectory(NodeRegistry registry) {
    this.registry = registry;
    this.subscription = registry.addListener(this::apply);
    refresh();
  }

  /** Reloads every entry from the registry (also done once at start). */
  public void refresh() {
    Map<String, NodeInfo> fresh = new HashMap<>();
    for (NodeInfo n : registry.all()) {
      fresh.put(n.id(), n);
    }
    nodes.keySet().retainAll(fresh.keySet());
    fresh.forEach(
        (id, n) ->
            nodes.merge(
                id,
                n,
                (old, neu) ->
                    neu.updatedAtMillis() >= old.updatedAtMillis() || neu.epoch() > old.epoch()
                        ? neu
                        : old));
  }

  private void apply(NodeChange c) {
    if (c.current() == null) {
      nodes.remove(c.id());
    } else {
      nodes.put(c.id(), c.current());
    }
  }

  /** ACTIVE nodes of {@code role}, ordered by id. */
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

  public List<NodeInfo> all() {
    List<NodeInfo> out = new ArrayList<>(nodes.values());
    out.sort(Comparator.comparing(NodeInfo::id));
    return out;
  }

  public Optional<NodeInfo> get(String id) {
    return Optional.ofNullable(nodes.get(id));
  }

  /** A one-line summary of the nodes of a role, for error messages. */
  public String describe(NodeRole role) {
    StringBuilder sb = new StringBuilder();
    int n = 0;
    for (NodeInfo i : all()) {
      if (i.role() == role) {
        sb.append(n++ == 0 ? "" : ", ").append(i.id()).append('=').append(i.state());
      }
    }
    return n == 0 ? "none registered" : sb.toString();
  }

  @Override
  public void close() {
    subscription.close();
  }
}
