package dev.pdserve.core.coordination;

import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.map.IMap;
import java.util.Optional;

/**
 * The coordinator lease entry. Every operation is an entry processor on the entry's partition
 * owner, checked against the owner's member list ({@link LeaseProcessors}): a member takes the
 * lease (next term) only when no live member holds it, and before each action the coordinator
 * confirms that it still holds its term — so a frozen former coordinator, or a member cut off on
 * the small side of a split, never acts on a term the cluster has moved past. The map also has
 * split-brain protection ({@code ClusterMember}): a side that is not a majority of the recent
 * cluster cannot write it at all.
 */
public final class CoordinatorLeaseStore {
  public static final String MAP_NAME = "pdserve.coordinator";
  static final String KEY = "current";

  private final IMap<String, CoordinatorLease> map;

  public CoordinatorLeaseStore(HazelcastInstance hz) {
    this.map = hz.getMap(MAP_NAME);
  }

  /** The lease entry; a released lease (no holder) has an empty member id. */
  public Optional<CoordinatorLease> current() {
    return Optional.ofNullable(map.get(KEY)).filter(l -> !l.memberId().isEmpty());
  }

  /**
   * Tries to make {@code nodeId} (member {@code memberId}) the holder and returns the lease as
   * stored: this member's (the existing one when it already holds it, else a new one with the next
   * term), or the live holder's, which means this member does not lead.
   */
  public CoordinatorLease acquire(String nodeId, String memberId, long nowMillis) {
    return map.executeOnKey(KEY, new LeaseProcessors.Acquire(nodeId, memberId, nowMillis));
  }

  /** Whether {@code lease} is still the stored lease and its member is live. */
  public boolean confirm(CoordinatorLease lease) {
    return Boolean.TRUE.equals(
        map.executeOnKey(KEY, new LeaseProcessors.Confirm(lease.memberId(), lease.term())));
  }

  /** Gives the lease up if {@code memberId} holds it. */
  public boolean release(String memberId) {
    return Boolean.TRUE.equals(map.executeOnKey(KEY, new LeaseProcessors.Release(memberId)));
  }
}
