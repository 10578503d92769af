package dev.pdserve.core.experts;

import com.hazelcast.core.HazelcastInstanceNotActiveException;
import com.hazelcast.splitbrainprotection.SplitBrainProtectionException;
import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.core.cluster.ExpertPlacementStore;
import dev.pdserve.core.cluster.NodeChange;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.cluster.Subscription;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Takes expert shards that left the cluster out of the expert placement. A shard that drains
 * withdraws itself; one that crashed never does, and the placement would go on naming it. When a
 * registry entry goes away (its member left: the registry removes the entries of departed members)
 * this publishes the placement without every placed shard that has no registry entry any more — a
 * compare-and-set on the version, so several members pruning at once publish one new version, and a
 * shard that registered again meanwhile is kept. Callers then see the lost experts as unplaced (and
 * say so), and a new shard for them is placed as usual.
 *
 * <p>Only a majority of the recent cluster may write the placement (its split-brain protection): a
 * member cut off from the rest sees every shard on the other side as departed, and must not publish
 * a placement without them. Such a pass is refused, logged once, and tried again every {@link
 * #REFUSED_RETRY}.
 *
 * <p>Runs on every member that follows the placement (workers with remote experts, expert shards);
 * the work happens on its own thread, not on Hazelcast's event thread. {@link #close()} stops it.
 */
public final class PlacementPruner implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(PlacementPruner.class);

  /** How soon a pass the placement's split-brain protection refused is tried again. */
  public static final Duration REFUSED_RETRY = Duration.ofSeconds(5);

  /**
   * How long after a registry removal the pass runs. Hazelcast updates its split-brain protection
   * on its own executor when a member leaves; the removal event may come first, and a pass run at
   * once on a member just cut off from the others could still be let through.
   */
  static final Duration AFTER_REMOVAL = Duration.ofSeconds(1);

  private final NodeRegistry registry;
  private final ExpertPlacementStore store;
  private final ScheduledThreadPoolExecutor worker;
  private final Subscription subscription;
  private final Duration refusedRetry;

  /** A pass is queued and has not started yet: one queued pass is enough (each sees it all). */
  private final AtomicBoolean queued = new AtomicBoolean();

  private volatile boolean refusedLogged;
  private final AtomicLong refusals = new AtomicLong();

  private PlacementPruner(
      NodeRegistry registry, ExpertPlacementStore store, String nodeId, Duration refusedRetry) {
    this.registry = registry;
    this.store = store;
    this.refusedRetry = refusedRetry;
    this.worker =
        new ScheduledThreadPoolExecutor(
            1, new NamedThreadFactory("pdserve-placement-pruner", true, nodeId));
    worker.setExecuteExistingDelayedTasksAfterShutdownPolicy(false);
    this.subscription = registry.addListener(this::changed);
  }

  /** Starts pruning on {@code registry}'s removals, and prunes once now (departures missed). */
  public static PlacementPruner start(
      NodeRegistry registry, ExpertPlacementStore store, String nodeId) {
    return start(registry, store, nodeId, REFUSED_RETRY);
  }

  /**
   * As {@link #start(NodeRegistry, ExpertPlacementStore, String)}; a pass refused because this
   * member is not in the majority of the recent cluster is tried again after {@code refusedRetry}.
   */
  public static PlacementPruner start(
      NodeRegistry registry, ExpertPlacementStore store, String nodeId, Duration refusedRetry) {
    PlacementPruner p = new PlacementPruner(registry, store, nodeId, refusedRetry);
    p.schedule();
    return p;
  }

  private void changed(NodeChange c) {
    if (c.kind() == NodeChange.Kind.REMOVED) {
      schedule(AFTER_REMOVAL);
    }
  }

  private void schedule() {
    schedule(Duration.ZERO);
  }

  private void schedule(Duration after) {
    if (!queued.compareAndSet(false, true)) {
      return;
    }
    try {
      worker.schedule(this::pruneQuietly, after.toMillis(), TimeUnit.MILLISECONDS);
    } catch (RejectedExecutionException closed) {
      queued.set(false); // closing
    }
  }

  /** Passes the placement's split-brain protection refused so far (this member was cut off). */
  public long refusals() {
    return refusals.get();
  }

  private void pruneQuietly() {
    queued.set(false);
    try {
      prune();
      if (refusedLogged) {
        refusedLogged = false;
        LOG.info("pruning the expert placement again: this member is back in the majority");
      }
    } catch (HazelcastInstanceNotActiveException e) {
      // this member is leaving; the others prune
    } catch (RuntimeException e) {
      SplitBrainProtectionException refused = refusal(e);
      if (refused != null) {
        refusedByProtection(refused);
      } else {
        LOG.warn("could not prune departed shards from the expert placement: {}", e.getMessage());
      }
    }
  }

  private static SplitBrainProtectionException refusal(Throwable t) {
    for (Throwable c = t; c != null; c = c.getCause()) {
      if (c instanceof SplitBrainProtectionException s) {
        return s;
      }
    }
    return null;
  }

  private void refusedByProtection(SplitBrainProtectionException e) {
    refusals.incrementAndGet();
    // Cut off from most of the cluster (woken alone from a freeze, the small side of a split):
    // the shards it cannot see may be alive on the other side, which prunes what really left.
    // Tried again in case this side is all there is (it becomes the majority after the window).
    if (!refusedLogged) {
      refusedLogged = true;
      LOG.warn(
          "not pruning the expert placement: this member is not in the majority of the recent"
              + " cluster ({}); trying again every {} s",
          e.getMessage(),
          refusedRetry.toSeconds());
    }
    schedule(refusedRetry);
  }

  /**
   * Publishes the placement without the shards that have no registry entry; returns the shards
   * removed (empty when none was placed without an entry, or another member removed them first).
   */
  public List<String> prune() {
    for (int attempt = 0; attempt < 20; attempt++) {
      Optional<ExpertPlacement> current = store.current();
      if (current.isEmpty()) {
        return List.of();
      }
      ExpertPlacement cur = current.get();
      List<String> gone = cur.shardIds().stream().filter(id -> registry.get(id).isEmpty()).toList();
      if (gone.isEmpty()) {
        return List.of();
      }
      ExpertPlacement next = cur;
      for (String id : gone) {
        next = next.withoutShard(id);
      }
      Optional<ExpertPlacement> published = store.publishAfter(cur.version(), next);
      if (published.isPresent()) {
        for (String id : gone) {
          List<ExpertPlacement.ExpertKey> hosted = cur.expertsOn(id);
          long orphaned =
              hosted.stream().filter(k -> !published.get().shards().containsKey(k)).count();
          LOG.warn(
              "expert shard {} left the cluster without withdrawing; expert placement v{} no longer"
                  + " lists it ({} of its {} experts have no shard now)",
              id,
              published.get().version(),
              orphaned,
              hosted.size());
        }
        return gone;
      }
    }
    LOG.warn("could not publish the expert placement without departed shards after 20 attempts");
    return List.of();
  }

  @Override
  public void close() {
    subscription.close();
    worker.shutdownNow();
    try {
      worker.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
