package dev.pdserve.core.cluster;

import com.hazelcast.cluster.Member;
import com.hazelcast.core.HazelcastInstance;

/**
 * The fencing rule of every registry write: a member the cluster has given up (removed from the
 * member list: crashed, or frozen past the heartbeat bound) is not a member any more, and nothing
 * it writes is taken. Checked inside the entry processors, on the partition owner, against the
 * owner's member list, so a stale writer cannot race the check.
 */
public final class Liveness {
  private Liveness() {}

  /** Whether {@code memberId} (a member UUID as a string) is in {@code hz}'s member list now. */
  public static boolean isMember(HazelcastInstance hz, String memberId) {
    if (memberId == null || memberId.isEmpty()) {
      return false;
    }
    for (Member m : hz.getCluster().getMembers()) {
      if (m.getUuid().toString().equals(memberId)) {
        return true;
      }
    }
    return false;
  }
}
