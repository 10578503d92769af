package dev.pdserve.launcher.node;

import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.core.cluster.ExpertPlacementStore;
import dev.pdserve.core.config.ExpertRange;
import dev.pdserve.model.config.ModelConfig;
import java.util.Map;
import java.util.Optional;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * An expert shard's place in the versioned expert placement: {@link #publish} adds it (a
 * compare-and-set on the version, retried on races), {@link #close()} takes it out again, so
 * callers switch to other shards between steps.
 */
final class ShardPlacement implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(ShardPlacement.class);

  private final ExpertPlacementStore store;
  private final String shardId;
  private final long version;

  private ShardPlacement(ExpertPlacementStore store, String shardId, long version) {
    this.store = store;
    this.shardId = shardId;
    this.version = version;
  }

  /** Publishes the placement with shard {@code shardId} hosting {@code range} of {@code model}. */
  static ShardPlacement publish(
      ExpertPlacementStore store, ModelConfig model, String shardId, ExpertRange range) {
    for (int attempt = 0; attempt < 100; attempt++) {
      ExpertPlacement cur = store.current().orElse(new ExpertPlacement(0, Map.of()));
      Optional<ExpertPlacement> next =
          store.publishAfter(cur.version(), cur.withShard(model, shardId, range));
      if (next.isPresent()) {
        return new ShardPlacement(store, shardId, next.get().version());
      }
    }
    throw new IllegalStateException(
        "could not publish the expert placement with shard " + shardId + " after 100 attempts");
  }

  /** The placement version that first listed this shard. */
  long version() {
    return version;
  }

  /** Takes this shard out of the placement (compare-and-set on the version, retried). */
  @Override
  public void close() {
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
