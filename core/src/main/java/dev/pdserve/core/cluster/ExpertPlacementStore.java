package dev.pdserve.core.cluster;

import com.hazelcast.core.EntryEvent;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.core.LifecycleEvent;
import com.hazelcast.map.IMap;
import com.hazelcast.map.listener.EntryAddedListener;
import com.hazelcast.map.listener.EntryMergedListener;
import com.hazelcast.map.listener.EntryUpdatedListener;
import java.util.Optional;
import java.util.UUID;
import java.util.function.Consumer;

/**
 * The cluster's current {@link ExpertPlacement}, one entry in an IMap. Versions go up by exactly
 * one per publication, fenced atomically on the partition owner, so two rebalancers racing from the
 * same version cannot both win.
 */
public final class ExpertPlacementStore {
  public static final String MAP_NAME = "pdserve.expert-placement";
  static final String KEY = "current";

  private final HazelcastInstance hz;
  private final IMap<String, ExpertPlacement> map;

  public ExpertPlacementStore(HazelcastInstance hz) {
    this.hz = hz;
    this.map = hz.getMap(MAP_NAME);
  }

  /** The published placement, if any. */
  public Optional<ExpertPlacement> current() {
    return Optional.ofNullable(map.get(KEY));
  }

  /** Version of the published placement, 0 if none. */
  public long currentVersion() {
    return current().map(ExpertPlacement::version).orElse(0L);
  }

  /**
   * Publishes {@code next} iff its version is the current version + 1 (1 when nothing is
   * published). Returns false, changing nothing, when someone else published first.
   */
  public boolean publish(ExpertPlacement next) {
    return map.executeOnKey(KEY, new RegistryProcessors.PublishPlacement(next));
  }

  /**
   * Publishes {@code assignment} as the version after {@code expectedVersion}; returns the stored
   * placement, or empty when the current version is not {@code expectedVersion}.
   */
  public Optional<ExpertPlacement> publishAfter(long expectedVersion, ExpertPlacement assignment) {
    ExpertPlacement next = assignment.withVersion(expectedVersion + 1);
    return publish(next) ? Optional.of(next) : Optional.empty();
  }

  /**
   * Calls {@code listener} with each newly published placement (on a Hazelcast event thread).
   * Closing the returned handle unsubscribes.
   */
  public Subscription onPublish(Consumer<ExpertPlacement> listener) {
    class Adapter
        implements EntryAddedListener<String, ExpertPlacement>,
            EntryUpdatedListener<String, ExpertPlacement> {
      @Override
      public void entryAdded(EntryEvent<String, ExpertPlacement> e) {
        listener.accept(e.getValue());
      }

      @Override
      public void entryUpdated(EntryEvent<String, ExpertPlacement> e) {
        listener.accept(e.getValue());
      }
    }
    UUID reg = map.addEntryListener(new Adapter(), KEY, true);
    return () ->
        ListenerRemoval.bounded("the placement listener", () -> map.removeEntryListener(reg));
  }

  /**
   * Calls {@code listener} with the stored placement whenever a split brain heals: when this member
   * has merged back into the cluster (its own side's view of the placement may differ from the one
   * the merge kept, even at the same version), and when a merge replaces the entry. On Hazelcast
   * event threads; closing the returned handle unsubscribes.
   */
  public Subscription onMerge(Consumer<ExpertPlacement> listener) {
    UUID lifecycle =
        hz.getLifecycleService()
            .addLifecycleListener(
                e -> {
                  if (e.getState() == LifecycleEvent.LifecycleState.MERGED) {
                    try {
                      current().ifPresent(listener);
                    } catch (RuntimeException ignored) {
                      // shutting down, or refused: the next publication brings it
                    }
                  }
                });
    UUID entry =
        map.addEntryListener(
            (EntryMergedListener<String, ExpertPlacement>) e -> listener.accept(e.getValue()),
            KEY,
            true);
    return () -> {
      ListenerRemoval.bounded("the placement merge listener", () -> map.removeEntryListener(entry));
      try {
        hz.getLifecycleService().removeLifecycleListener(lifecycle);
      } catch (RuntimeException ignored) {
        // already shut down
      }
    };
  }
}
