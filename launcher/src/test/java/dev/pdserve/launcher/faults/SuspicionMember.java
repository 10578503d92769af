package dev.pdserve.launcher.faults;

import com.hazelcast.cluster.MembershipEvent;
import com.hazelcast.cluster.MembershipListener;
import dev.pdserve.core.cluster.ClusterMember;
import dev.pdserve.core.config.NodeConfigLoader;
import java.util.HashMap;
import java.util.Map;

/**
 * A bare cluster member in its own JVM for {@link SuspicionRun}: joins with the given failure
 * detector and reports what its member list does. It prints
 *
 * <ul>
 *   <li>{@code READY <host:port> <members>} once it is part of a cluster;
 *   <li>{@code REMOVED <node id> <epoch millis> <members>} when it drops a member;
 *   <li>{@code ADDED <node id> <epoch millis> <members>} when a member joins.
 * </ul>
 *
 * <p>Arguments: cluster name, seeds ({@code host:port,...} or {@code -}), node id, detector ({@code
 * PHI_ACCRUAL} | {@code DEADLINE}), phi threshold.
 */
public final class SuspicionMember {
  private SuspicionMember() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> m = new HashMap<>();
    m.put("role", "decode");
    m.put("node.id", args[2]);
    m.put("cluster.name", args[0]);
    if (!args[1].equals("-")) {
      m.put("cluster.members", args[1]);
    }
    m.put("cluster.port", args.length > 6 ? args[6] : "0");
    m.put("cluster.join-wait-seconds", "0");
    m.put("cluster.failure-detector", args[3]);
    m.put("cluster.phi-threshold", args[4]);
    ClusterMember member = ClusterMember.start(NodeConfigLoader.fromMap(m));
    member
        .hazelcast()
        .getCluster()
        .addMembershipListener(
            new MembershipListener() {
              @Override
              public void memberAdded(MembershipEvent e) {
                say("ADDED", e);
              }

              @Override
              public void memberRemoved(MembershipEvent e) {
                say("REMOVED", e);
              }
            });
    synchronized (SuspicionMember.class) {
      System.out.println("READY " + member.hazelcastAddress() + " " + member.clusterSize());
      System.out.flush();
    }
    if (args.length > 5 && args[5].startsWith("data")) {
      // What a node does with the cluster besides heartbeats: its registry entry updated every
      // 250 ms (backed up on another member), a listener on the map, reads of the whole map.
      var map = member.hazelcast().<String, Long>getMap("pdserve.nodes");
      map.addEntryListener(
          (com.hazelcast.map.listener.EntryUpdatedListener<String, Long>) e -> {}, true);
      for (long i = 0; ; i++) {
        try {
          map.set(args[2], i);
          map.size();
        } catch (RuntimeException e) {
          // refused while cut off
        }
        Thread.sleep(250);
      }
    }
    Thread.currentThread().join();
  }

  private static synchronized void say(String what, MembershipEvent e) {
    String id = e.getMember().getAttribute(ClusterMember.NODE_ID_ATTRIBUTE);
    System.out.println(
        what + " " + id + " " + System.currentTimeMillis() + " " + e.getMembers().size());
    System.out.flush();
  }
}
