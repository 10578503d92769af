package dev.pdserve.launcher.node;

import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.core.cluster.ExpertPlacementStore;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.config.ExpertRange;
import dev.pdserve.model.config.ModelConfig;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * An expert shard's place in the versioned expert placement: {@link #publish} adds it (a
 * compare-and-set on the version, retried on races), {@link #close()} takes it out again, so
 * callers switch to other shards between steps.
 *
 * <p>While open it keeps its place: a shard the cluster gave up (frozen, or cut off, past the
 * heartbeat bound) is pruned from the placement by the others; once it is back and registered
 * again, it adds itself again (checked every {@link #KEEP_PERIOD}), so it serves again without a
 * restart.
 */
final class ShardPlacement implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(ShardPlacement.class);

  /** How often an open shard checks that the placement still lists it. */
  static final Duration KEEP_PERIOD = Duration.ofSeconds(1);

  private final ExpertPlacementStore store;
  private final NodeRegistry registry;
  private final ModelConfig model;
  private final String shardId;
  private final ExpertRange range;
  private final long version;
  private final ScheduledExecutorService keeper;
  private volatile boolean closed;

  private ShardPlacement(
      ExpertPlacementStore store,
      NodeRegistry registry,
      ModelConfig model,
      String shardId,
      ExpertRange range,
      long version) {
    this.store = store;
    this.registry = registry;
    this.model = model;
    this.shardId = shardId;
    this.range = range;
    this.version = version;
    this.keeper =
        Executors.newSingleThreadScheduledExecutor(
            new NamedThreadFactory("shard-placement", true, shardId));
    keeper.scheduleWithFixedDelay(
        this::keep, KEEP_PERIOD.toMillis(), KEEP_PERIOD.toMillis(), TimeUnit.MILLISECONDS);
  }

  /**
   * Publishes the placement with shard {@code shardId} hosting {@code range} of {@code model}, and
   * keeps it there while {@code registry} lists the shard.
   */
  static ShardPlacement publish(
      ExpertPlacementStore store,
      NodeRegistry registry,
      ModelConfig model,
      String shardId,
      ExpertRange range) {
    for (int attempt = 0; attempt < 100; attempt++) {
      Optional<ExpertPlacement> next = tryAdd(store, model, shardId, range);
      if (next.isPresent()) {
        return new ShardPlacement(store, registry, model, shardId, range, next.get().version());
      }
    }
    throw new IllegalStateException(
        "could not publish the expert placement with shard " + shardId + " after 100 attempts");
  }

  private static Optional<ExpertPlacement> tryAdd(
      ExpertPlacementStore store, ModelConfig model, String shardId, ExpertRange range) {
    ExpertPlacement cur = store.current().orElse(new ExpertPlacement(0, Map.of()));
    return store.publishAfter(cur.version(), cur.withShard(model, shardId, range));
  }

  private void keep() {
    try {
      if (closed || registry.get(shardId).isEmpty()) {
        return; // not registered (yet): the others would prune it again
      }
      Optional<ExpertPlacement> cur = store.current();
      if (cur.isPresent() && cur.get().shardIds().contains(shardId)) {
        return;
      }
      Optional<ExpertPlacement> next = tryAdd(store, model, shardId, range);
      if (next.isPresent() && !closed) {
        LOG.warn(
            "expert shard {} was not in the expert placement (the cluster gave it up while it was"
                + " frozen or cut off); it is back in v{}",
            shardId,
            next.get().version());
      }
    } catch (RuntimeException e) {
      LOG.debug("could not check shard {}'s place in the placement: {}", shardId, e.toString());
    }
  }

  /** The placement version that first listed this shard. */
  long version() {
    return version;
  }

  /** Takes this shard out of the placement (compare-and-set on the version, retried). */
  @Override
  public void close() {
    closed = true;
    keeper.shutdownNow();
    try {
      keeper.awaitTermination(2, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    try {
      for (int attempt = 0; attempt < 20; attempt++) {
        ExpertPlacement cur = store.current().orElse(null);
        if (cur == null || !cur.shardIds().contains(shardId)) {
          return;
        }
        if (store.publishAfter(cur.version(), cur.withoutShard(shardId)).isPresent()) {
          return;
        }
      }
    } catch (RuntimeException e) {
      LOG.debug("could not withdraw shard {}: {}", shardId, e.toString());
    }
  }
}
