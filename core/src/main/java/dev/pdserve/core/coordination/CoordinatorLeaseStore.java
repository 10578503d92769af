package dev.pdserve.core.coordination;

import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.map.IMap;
import java.util.Optional;

/**
 * The coordinator lease entry. Taking it over is a compare-and-set on the entry ({@code
 * putIfAbsent} / {@code replace(key, old, new)}), so two members that both believe they are the
 * oldest cannot both bump the term from the same value.
 */
public final class CoordinatorLeaseStore {
  public static final String MAP_NAME = "pdserve.coordinator";
  static final String KEY = "current";

  private final IMap<String, CoordinatorLease> map;

  public CoordinatorLeaseStore(HazelcastInstance hz) {
    this.map = hz.getMap(MAP_NAME);
  }

  public Optional<CoordinatorLease> current() {
    return Optional.ofNullable(map.get(KEY));
  }

  /**
   * Makes {@code nodeId} (member {@code memberId}) the holder: returns the lease as stored — the
   * existing one when this member already holds it, else a new one with the next term.
   */
  public CoordinatorLease acquire(String nodeId, String memberId, long nowMillis) {
    while (true) {
      CoordinatorLease cur = map.get(KEY);
      if (cur != null && cur.memberId().equals(memberId) && cur.nodeId().equals(nodeId)) {
        return cur;
      }
      CoordinatorLease next =
          new CoordinatorLease(nodeId, memberId, cur == null ? 1 : cur.term() + 1, nowMillis);
      if (cur == null ? map.putIfAbsent(KEY, next) == null : map.replace(KEY, cur, next)) {
        return next;
      }
    }
  }
}
