package dev.pdserve.core.cluster;

import com.hazelcast.cluster.MembershipEvent;
import com.hazelcast.cluster.MembershipListener;
import com.hazelcast.core.EntryEvent;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.core.HazelcastInstanceNotActiveException;
import com.hazelcast.map.IMap;
import com.hazelcast.map.listener.EntryAddedListener;
import com.hazelcast.map.listener.EntryEvictedListener;
import com.hazelcast.map.listener.EntryExpiredListener;
import com.hazelcast.map.listener.EntryRemovedListener;
import com.hazelcast.map.listener.EntryUpdatedListener;
import com.hazelcast.query.Predicates;
import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.config.NodeRole;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The cluster's node registry: an {@code IMap<String, NodeInfo>} keyed by node id. Every write is
 * an entry processor, atomic per key on the partition owner; role/state changes are fenced by the
 * entry's epoch ({@link #compareAndSet}), which is how the open-source edition (no CP subsystem)
 * gets a safe compare-and-set.
 *
 * <p>Entries belong to the Hazelcast member that registered them. When a member leaves (graceful
 * shutdown, crash detected by heartbeat, or a dropped connection), every remaining registry removes
 * its entries, so {@link #activeNodes} stops returning a dead node within the heartbeat bound
 * ({@code pdserve.cluster.max-no-heartbeat-seconds}).
 *
 * <p>Fencing: every write names this member as its writer, and the partition owner refuses writes
 * from a member that is not in its member list (see {@link RegistryProcessors}), so a node the
 * cluster has given up cannot change anything until it has rejoined as a new member; and no one
 * removes a live member's entries.
 */
public final class NodeRegistry implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(NodeRegistry.class);

  public static final String MAP_NAME = "pdserve.nodes";
  private static final int REMOVE_ATTEMPTS = 10;
  private static final long REMOVE_RETRY_MILLIS = 200;

  private final HazelcastInstance hz;
  private final IMap<String, NodeInfo> map;
  private final ThreadPoolExecutor sweeper;
  private final UUID membershipRegistration;
  private final List<UUID> entryListeners = new CopyOnWriteArrayList<>();

  public NodeRegistry(HazelcastInstance hz) {
    this.hz = hz;
    this.map = hz.getMap(MAP_NAME);
    this.sweeper =
        new ThreadPoolExecutor(
            1,
            1,
            0,
            TimeUnit.MILLISECONDS,
            new LinkedBlockingQueue<>(),
            new NamedThreadFactory("pdserve-registry-sweeper-" + hz.getName(), true));
    this.membershipRegistration =
        hz.getCluster()
            .addMembershipListener(
                new MembershipListener() {
                  @Override
                  public void memberAdded(MembershipEvent event) {}

                  @Override
                  public void memberRemoved(MembershipEvent event) {
                    String gone = event.getMember().getUuid().toString();
                    try {
                      sweeper.execute(() -> removeEntriesOf(gone));
                    } catch (RejectedExecutionException closing) {
                      // this registry is closed
                    }
                  }
                });
  }

  /**
   * Writes {@code info} as this member's entry for its id and returns what was stored: the member
   * id is set to this member, the time to now, and the epoch to {@code info.epoch()} or, if the id
   * was registered before, above the previous epoch (a restarted node never reuses an epoch).
   *
   * @throws FencedException if the cluster does not count this member as live (it was given up and
   *     has not rejoined yet)
   */
  public NodeInfo register(NodeInfo info) {
    String member = localMemberId();
    NodeInfo stamped = info.withRegistration(member, info.epoch(), System.currentTimeMillis());
    NodeInfo stored =
        map.executeOnKey(
            info.id(), new RegistryProcessors.Register(stamped, System.currentTimeMillis()));
    if (stored == null || !stored.memberId().equals(member)) {
      throw new FencedException(
          "registration of "
              + info.id()
              + " refused: member "
              + member
              + " is not in the cluster's member list (given up; it must rejoin first)");
    }
    return stored;
  }

  /**
   * Replaces the load figures of a node, leaving role, state and epoch alone; false if it is not
   * registered by this member (absent, registered by another member or incarnation, or this member
   * is fenced off).
   */
  public boolean updateLoad(String id, Load load) {
    Objects.requireNonNull(load, "load");
    return map.executeOnKey(
        id, new RegistryProcessors.UpdateLoad(load, localMemberId(), System.currentTimeMillis()));
  }

  /**
   * Moves a node to {@code newRole}/{@code newState} if its entry still has {@code expectedEpoch}
   * (and {@code expectedState}, unless null). Applied transitions bump the epoch by one; of several
   * callers holding the same epoch exactly one wins, the others get {@link
   * Transition.Outcome#STALE_EPOCH} and the winner's entry.
   *
   * @param newRole the new role, or null to keep the current one
   */
  public Transition compareAndSet(
      String id,
      long expectedEpoch,
      NodeState expectedState,
      NodeRole newRole,
      NodeState newState) {
    Objects.requireNonNull(newState, "newState");
    return map.executeOnKey(
        id,
        new RegistryProcessors.CompareAndSet(
            expectedEpoch,
            expectedState,
            newRole,
            newState,
            localMemberId(),
            System.currentTimeMillis()));
  }

  public Optional<NodeInfo> get(String id) {
    return Optional.ofNullable(map.get(id));
  }

  /** ACTIVE nodes of a role, sorted by id. */
  public List<NodeInfo> activeNodes(NodeRole role) {
    return sorted(
        map.values(
            Predicates.and(
                Predicates.equal("role", role.name()),
                Predicates.equal("state", NodeState.ACTIVE.name()))));
  }

  /** Every registered node, sorted by id. */
  public List<NodeInfo> all() {
    return sorted(map.values());
  }

  /** Removes a node's entry; false if there was none. */
  public boolean remove(String id) {
    return map.remove(id) != null;
  }

  /**
   * Removes entries whose member is not in the cluster any more (missed departures: e.g. every
   * member that saw a departure left too). Meant for the coordinator to run now and then; returns
   * how many went.
   */
  public int removeOrphans() {
    Set<String> live = new HashSet<>();
    hz.getCluster().getMembers().forEach(m -> live.add(m.getUuid().toString()));
    int removed = 0;
    for (NodeInfo n : map.values()) {
      if (!live.contains(n.memberId())
          && Boolean.TRUE.equals(
              map.executeOnKey(
                  n.id(), new RegistryProcessors.RemoveIfMember(n.memberId(), localMemberId())))) {
        LOG.info("removed orphaned registry entry {} (member {} is gone)", n.id(), n.memberId());
        removed++;
      }
    }
    return removed;
  }

  /**
   * Calls {@code listener} for every later change to the registry (on a Hazelcast event thread:
   * keep it quick). Closing the returned handle unsubscribes.
   */
  public Subscription addListener(Consumer<NodeChange> listener) {
    UUID reg = map.addEntryListener(new Adapter(listener), true);
    entryListeners.add(reg);
    return () -> {
      if (entryListeners.remove(reg)) {
        ListenerRemoval.bounded("a registry listener", () -> map.removeEntryListener(reg));
      }
    };
  }

  /** This member's UUID: the writer every registry write names. */
  private String localMemberId() {
    return hz.getCluster().getLocalMember().getUuid().toString();
  }

  /**
   * Removes a departed member's entries. The partition owner may not have seen the departure yet
   * (it refuses to remove a live member's entries), so refused removals are tried again a few
   * times.
   */
  private void removeEntriesOf(String memberId) {
    try {
      for (int attempt = 0; attempt < REMOVE_ATTEMPTS; attempt++) {
        Set<String> ids = map.keySet(Predicates.equal("memberId", memberId));
        if (ids.isEmpty()) {
          return;
        }
        if (attempt > 0) {
          Thread.sleep(REMOVE_RETRY_MILLIS);
        }
        for (String id : ids) {
          if (Boolean.TRUE.equals(
              map.executeOnKey(
                  id, new RegistryProcessors.RemoveIfMember(memberId, localMemberId())))) {
            LOG.info("removed registry entry {}: its member {} left the cluster", id, memberId);
          }
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (HazelcastInstanceNotActiveException e) {
      // this member is shutting down too; the remaining ones clean up
    } catch (RuntimeException e) {
      LOG.warn("could not remove the registry entries of departed member {}", memberId, e);
    }
  }

  private static List<NodeInfo> sorted(Collection<NodeInfo> nodes) {
    List<NodeInfo> out = new ArrayList<>(nodes);
    out.sort(Comparator.comparing(NodeInfo::id));
    return out;
  }

  @Override
  public void close() {
    try {
      hz.getCluster().removeMembershipListener(membershipRegistration);
    } catch (HazelcastInstanceNotActiveException ignored) {
      // the member is already gone
    }
    List<UUID> regs = List.copyOf(entryListeners);
    entryListeners.clear();
    if (!regs.isEmpty()) {
      ListenerRemoval.bounded(
          "the registry's listeners",
          () -> {
            for (UUID reg : regs) {
              map.removeEntryListener(reg);
            }
          });
    }
    sweeper.shutdown();
    try {
      if (!sweeper.awaitTermination(5, TimeUnit.SECONDS)) {
        sweeper.shutdownNow();
      }
    } catch (InterruptedException e) {
      sweeper.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }

  private static final class Adapter
      implements EntryAddedListener<String, NodeInfo>,
          EntryUpdatedListener<String, NodeInfo>,
          EntryRemovedListener<String, NodeInfo>,
          EntryEvictedListener<String, NodeInfo>,
          EntryExpiredListener<String, NodeInfo> {
    private final Consumer<NodeChange> listener;

    Adapter(Consumer<NodeChange> listener) {
      this.listener = listener;
    }

    @Override
    public void entryAdded(EntryEvent<String, NodeInfo> e) {
      listener.accept(new NodeChange(NodeChange.Kind.ADDED, e.getKey(), null, e.getValue()));
    }

    @Override
    public void entryUpdated(EntryEvent<String, NodeInfo> e) {
      listener.accept(
          new NodeChange(NodeChange.Kind.UPDATED, e.getKey(), e.getOldValue(), e.getValue()));
    }

    @Override
    public void entryRemoved(EntryEvent<String, NodeInfo> e) {
      listener.accept(new NodeChange(NodeChange.Kind.REMOVED, e.getKey(), e.getOldValue(), null));
    }

    @Override
    public void entryEvicted(EntryEvent<String, NodeInfo> e) {
      entryRemoved(e);
    }

    @Override
    public void entryExpired(EntryEvent<String, NodeInfo> e) {
      entryRemoved(e);
    }
  }
}
