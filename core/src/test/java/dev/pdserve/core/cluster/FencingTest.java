package dev.pdserve.core.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.hazelcast.map.IMap;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.coordination.CoordinatorLease;
import dev.pdserve.core.coordination.CoordinatorLeaseStore;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Writes in the name of a member the cluster does not (any more) list are refused on the partition
 * owner, and nobody removes a live member's entries; the coordinator lease is taken only from a
 * holder that is gone and confirmed per term. Two real members in one JVM; "a given-up member" is a
 * UUID not in the member list, which is exactly what a member removed after a freeze is.
 */
class FencingTest {
  static ClusterMember a;
  static ClusterMember b;
  static NodeRegistry regA;
  static IMap<String, NodeInfo> map;

  @BeforeAll
  static void startCluster() {
    String cluster = TestClusters.newClusterName();
    a = TestClusters.start(cluster, "fence-a");
    b = TestClusters.start(cluster, "fence-b", a);
    regA = new NodeRegistry(a.hazelcast());
    map = b.hazelcast().getMap(NodeRegistry.MAP_NAME);
  }

  @AfterAll
  static void stopCluster() {
    if (regA != null) {
      regA.close();
    }
    TestClusters.closeAll(a, b);
  }

  private static NodeInfo active(String id) {
    NodeInfo n = regA.register(NodeInfo.starting(id, NodeRole.DECODE, "h:1", "", ""));
    return regA.compareAndSet(id, n.epoch(), NodeState.STARTING, null, NodeState.ACTIVE).node();
  }

  @Test
  void aGivenUpMembersRegistryWritesAreRefused() {
    NodeInfo live = active("fenced-1");
    String gone = UUID.randomUUID().toString();
    long now = System.currentTimeMillis();

    NodeInfo stale = NodeInfo.starting("fenced-1", NodeRole.PREFILL, "h:2", "", "");
    NodeInfo afterRegister =
        map.executeOnKey(
            "fenced-1", new RegistryProcessors.Register(stale.withRegistration(gone, 0, now), now));
    assertEquals(live, afterRegister, "registration by a given-up member left the entry alone");
    assertFalse(
        map.executeOnKey(
            "fenced-1", new RegistryProcessors.UpdateLoad(new Load(1, 1, 1, 1, 1), gone, now)));
    Transition t =
        map.executeOnKey(
            "fenced-1",
            new RegistryProcessors.CompareAndSet(
                live.epoch(), null, NodeRole.PREFILL, NodeState.DRAINING, gone, now));
    assertEquals(Transition.Outcome.FENCED, t.outcome());
    assertFalse(
        map.executeOnKey("fenced-1", new RegistryProcessors.RemoveIfMember(live.memberId(), gone)));
    assertEquals(live, regA.get("fenced-1").orElseThrow());

    assertTrue(regA.updateLoad("fenced-1", new Load(2, 2, 2, 2, 2)));

    // An entry whose member is gone takes no load updates: its node must register again.
    map.executeOnKey(
        "fenced-1", new RegistryProcessors.SetValue(live.withRegistration(gone, 9, now)));
    assertFalse(regA.updateLoad("fenced-1", new Load(3, 3, 3, 3, 3)));
  }

  @Test
  void noLiveMembersEntryIsRemovedByAnotherMemberButAGoneMembersIs() {
    NodeInfo live = active("fenced-2");
    assertFalse(
        map.executeOnKey(
            "fenced-2",
            new RegistryProcessors.RemoveIfMember(live.memberId(), b.memberId().toString())),
        "b may not remove the entry of a, which is live");
    assertTrue(regA.get("fenced-2").isPresent());

    String gone = UUID.randomUUID().toString();
    long now = System.currentTimeMillis();
    map.executeOnKey(
        "fenced-3", new RegistryProcessors.SetValue(live.withRegistration(gone, 5, now)));
    assertTrue(
        map.executeOnKey(
            "fenced-3", new RegistryProcessors.RemoveIfMember(gone, b.memberId().toString())));
  }

  @Test
  void aMemberOutsideTheClusterCannotRegister() {
    NodeRegistry regB = new NodeRegistry(b.hazelcast());
    try {
      // The member's own registration goes through; one naming a stranger would not.
      assertEquals(
          b.memberId().toString(),
          regB.register(NodeInfo.starting("fenced-4", NodeRole.DECODE, "h:4", "", "")).memberId());
      IMap<String, NodeInfo> m = a.hazelcast().getMap(NodeRegistry.MAP_NAME);
      long now = System.currentTimeMillis();
      NodeInfo fromStranger =
          NodeInfo.starting("fenced-5", NodeRole.DECODE, "h:5", "", "")
              .withRegistration(UUID.randomUUID().toString(), 0, now);
      assertEquals(
          null, m.executeOnKey("fenced-5", new RegistryProcessors.Register(fromStranger, now)));
      assertTrue(regB.get("fenced-5").isEmpty());
    } finally {
      regB.close();
    }
  }

  @Test
  void theCoordinatorLeaseIsTakenOnlyFromAGoneHolderAndConfirmedPerTerm() {
    CoordinatorLeaseStore leases = new CoordinatorLeaseStore(a.hazelcast());
    String ma = a.memberId().toString();
    String mb = b.memberId().toString();
    CoordinatorLease first = leases.acquire("fence-a", ma, 1);
    assertEquals(ma, first.memberId());
    assertTrue(leases.confirm(first));

    CoordinatorLease refused = new CoordinatorLeaseStore(b.hazelcast()).acquire("fence-b", mb, 2);
    assertEquals(first, refused, "a live holder keeps the lease");
    CoordinatorLease stranger = leases.acquire("frozen", UUID.randomUUID().toString(), 3);
    assertEquals(first, stranger, "a member outside the cluster takes nothing");

    assertTrue(leases.release(ma));
    assertTrue(leases.current().isEmpty());
    CoordinatorLease second = new CoordinatorLeaseStore(b.hazelcast()).acquire("fence-b", mb, 4);
    assertEquals(first.term() + 1, second.term());
    assertFalse(leases.confirm(first), "the old term is fenced");
    assertTrue(leases.confirm(second));
    assertFalse(leases.confirm(new CoordinatorLease("frozen", ma, second.term() + 1, 0)));
    assertTrue(leases.release(mb));
  }
}
