package dev.pdserve.core.cluster;

import com.hazelcast.nio.ObjectDataInput;
import com.hazelcast.nio.ObjectDataOutput;
import com.hazelcast.spi.merge.MergingValue;
import com.hazelcast.spi.merge.SplitBrainMergePolicy;
import dev.pdserve.core.coordination.CoordinatorLease;

/**
 * How the registry maps merge when a split brain heals. Hazelcast merges the smaller side into the
 * larger one (the side that kept the cluster going); {@code existing} is the larger side's entry,
 * {@code merging} the smaller side's:
 *
 * <ul>
 *   <li>node entries ({@link NodeInfo}): the live side's entry wins; when both hold one, the higher
 *       epoch. An entry only the merging side has is dropped: it was written while that side was
 *       cut off (the live side removed it with its member), and its node registers again under the
 *       new member id it gets when it rejoins.
 *   <li>the coordinator lease ({@link CoordinatorLease}): the live side's lease wins whatever its
 *       term — a term the cut-off side took on its own never acted (the lease map's split-brain
 *       protection) and must not outrank the real coordinator; taken only when the live side has
 *       none.
 *   <li>the expert placement ({@link ExpertPlacement}): the higher version, the live side's on a
 *       tie.
 * </ul>
 *
 * <p>{@link #decide} is the rule itself, on deserialized values, for tests.
 */
public final class RegistryMergePolicy
    implements SplitBrainMergePolicy<Object, MergingValue<Object>, Object> {

  /** Which side's value to keep. */
  public enum Keep {
    EXISTING,
    MERGING,
    NEITHER
  }

  public RegistryMergePolicy() {}

  @Override
  public Object merge(MergingValue<Object> merging, MergingValue<Object> existing) {
    Object m = merging == null ? null : merging.getDeserializedValue();
    Object e = existing == null ? null : existing.getDeserializedValue();
    return switch (decide(m, e)) {
      case EXISTING -> existing.getRawValue();
      case MERGING -> merging.getRawValue();
      case NEITHER -> null;
    };
  }

  /** The merge rule on values ({@code null} = the side has no entry). */
  public static Keep decide(Object merging, Object existing) {
    if (merging == null) {
      return existing == null ? Keep.NEITHER : Keep.EXISTING;
    }
    if (merging instanceof NodeInfo m) {
      if (existing instanceof NodeInfo e) {
        return m.epoch() > e.epoch() ? Keep.MERGING : Keep.EXISTING;
      }
      return existing == null ? Keep.NEITHER : Keep.EXISTING;
    }
    if (merging instanceof ExpertPlacement m && existing instanceof ExpertPlacement e) {
      return m.version() > e.version() ? Keep.MERGING : Keep.EXISTING;
    }
    return existing == null ? Keep.MERGING : Keep.EXISTING;
  }

  @Override
  public void writeData(ObjectDataOutput out) {}

  @Override
  public void readData(ObjectDataInput in) {}
}
