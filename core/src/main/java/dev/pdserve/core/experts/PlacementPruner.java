package dev.pdserve.core.experts;

import com.hazelcast.core.HazelcastInstanceNotActiveException;
import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.core.cluster.ExpertPlacementStore;
import dev.pdserve.core.cluster.NodeChange;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.cluster.Subscription;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
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
 * <p>Runs on every member that follows the placement (workers with remote experts, expert shards);
 * the work happens on its own thread, not on Hazelcast's event thread. {@link #close()} stops it.
 */
public final class PlacementPruner implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(PlacementPruner.class);

  private final NodeRegistry registry;
  private final ExpertPlacementStore store;
  private final ThreadPoolExecutor worker;
  private final Subscription subscription;

  private PlacementPruner(NodeRegistry registry, ExpertPlacementStore store, String nodeId) {
    this.registry = registry;
    this.store = store;
    // One pass queued at a time is enough: each looks at the whole placement.
    this.worker =
        new ThreadPoolExecutor(
            1,
            1,
            0,
            TimeUnit.MILLISECONDS,
            new LinkedBlockingQueue<>(1),
            new NamedThreadFactory("pdserve-placement-pruner", true, nodeId),
            new ThreadPoolExecutor.DiscardPolicy());
    this.subscription = registry.addListener(this::changed);
  }

  /** Starts pruning on {@code registry}'s removals, and prunes once now (departures missed). */
  public static PlacementPruner start(
      NodeRegistry registry, ExpertPlacementStore store, String nodeId) {
    PlacementPruner p = new PlacementPruner(registry, store, nodeId);
    p.schedule();
    return p;
  }

  private void changed(NodeChange c) {
    if (c.kind() == NodeChange.Kind.REMOVED) {
      schedule();
    }
  }

  private void schedule() {
    try {
      worker.execute(this::pruneQuietly);
    } catch (RejectedExecutionException closed) {
      // closing
    }
  }

  private void pruneQuietly() {
    try {
      prune();
    } catch (HazelcastInstanceNotActiveException e) {
      // this member is leaving; the others prune
    } catch (RuntimeException e) {
      LOG.warn("could not prune departed shards from the expert placement: {}", e.getMessage());
    }
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
