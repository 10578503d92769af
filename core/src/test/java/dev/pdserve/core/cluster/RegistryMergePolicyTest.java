package dev.pdserve.core.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.cluster.RegistryMergePolicy.Keep;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.coordination.CoordinatorLease;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** The split-brain merge rule and the lease quorum function, on values (no cluster). */
class RegistryMergePolicyTest {
  private static NodeInfo node(long epoch, String member) {
    return new NodeInfo(
        "d0", NodeRole.DECODE, NodeState.ACTIVE, epoch, member, "h:1", "", "", Load.IDLE, 0);
  }

  @Test
  void theLiveSidesNodeEntryWinsAndOneOnlyTheCutOffSideHasIsDropped() {
    assertEquals(Keep.EXISTING, RegistryMergePolicy.decide(node(7, "old"), node(7, "live")));
    assertEquals(Keep.EXISTING, RegistryMergePolicy.decide(node(3, "old"), node(7, "live")));
    assertEquals(Keep.MERGING, RegistryMergePolicy.decide(node(9, "m"), node(7, "live")));
    assertEquals(Keep.NEITHER, RegistryMergePolicy.decide(node(9, "frozen"), null));
    assertEquals(Keep.EXISTING, RegistryMergePolicy.decide(null, node(1, "live")));
  }

  @Test
  void theLiveSidesCoordinatorLeaseWinsWhateverTheTerm() {
    CoordinatorLease live = new CoordinatorLease("a", "ma", 1, 0);
    CoordinatorLease cutOff = new CoordinatorLease("f", "mf", 2, 0);
    assertEquals(Keep.EXISTING, RegistryMergePolicy.decide(cutOff, live));
    assertEquals(Keep.MERGING, RegistryMergePolicy.decide(cutOff, null));
  }

  @Test
  void theHigherPlacementVersionWins() {
    ExpertPlacement v1 = new ExpertPlacement(1, Map.of());
    ExpertPlacement v2 = new ExpertPlacement(2, Map.of());
    assertEquals(Keep.MERGING, RegistryMergePolicy.decide(v2, v1));
    assertEquals(Keep.EXISTING, RegistryMergePolicy.decide(v1, v2));
    assertEquals(Keep.EXISTING, RegistryMergePolicy.decide(v1, v1));
  }

  @Test
  void aMemberAloneAfterAFreezeIsNoMajorityUntilTheWindowPasses() {
    AtomicLong now = new AtomicLong();
    RecentMajority q = new RecentMajority(Duration.ofSeconds(60), now::get);
    assertTrue(q.observe(3), "3 of 3");
    now.addAndGet(Duration.ofSeconds(20).toNanos()); // frozen 20 s, wakes alone
    assertFalse(q.observe(1), "1 of the 3 seen 20 s ago");
    assertTrue(new RecentMajority(Duration.ofSeconds(60), now::get).observe(1), "a lone member");
    assertTrue(q.observe(3), "merged back");
    now.addAndGet(Duration.ofSeconds(1).toNanos());
    assertTrue(q.observe(2), "the side that kept going: 2 of 3");
    assertFalse(q.observe(1));
    now.addAndGet(Duration.ofSeconds(61).toNanos());
    assertTrue(q.observe(1), "alone for longer than the window: its own majority");
  }
}
