package dev.pdserve.router;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.router.InMemoryNodeClients.OpenStream;
import dev.pdserve.router.InMemoryNodeClients.Renewal;
import dev.pdserve.router.RouterHarness.Submitted;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Lease renewal rounds on the router's clock: due reservations, one call per decode node. */
class LeaseRenewerTest {
  private static final long LEASE_MILLIS = 3000; // renewed every 1000 ms

  private RouterHarness h;
  private NodeInfo d2;

  @BeforeEach
  void setUp() {
    h = RouterHarness.withOptions(8, 8, 1);
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.add("d1", NodeRole.DECODE);
    d2 = h.cluster.add("d2", NodeRole.DECODE);
  }

  @AfterEach
  void tearDown() {
    h.close();
  }

  @Test
  void dueReservationsAreRenewedInOneCallPerNodeAndNotBefore() {
    h.cluster.setState("d2", NodeState.DRAINING);
    reserved("a", "t-a", LEASE_MILLIS);
    decoding("b", "t-b", LEASE_MILLIS); // a lease lives on while the stream runs
    h.cluster.setState("d2", NodeState.ACTIVE);
    h.cluster.setState("d1", NodeState.DRAINING);
    reserved("c", "t-c", LEASE_MILLIS);

    h.ticker.advance(Duration.ofMillis(999));
    h.router.leaseRenewer().renewDue();
    assertEquals(List.of(), h.clients.takeRenewals(), "no lease is a third old yet");

    h.ticker.advance(Duration.ofMillis(1));
    h.router.leaseRenewer().renewDue();
    assertEquals(
        List.of(new Renewal("d1", List.of("t-a", "t-b")), new Renewal("d2", List.of("t-c"))),
        sorted(h.clients.takeRenewals()));

    h.router.leaseRenewer().renewDue();
    assertEquals(List.of(), h.clients.takeRenewals(), "just renewed: not due again");

    h.ticker.advance(Duration.ofMillis(1000));
    h.router.leaseRenewer().renewDue();
    assertEquals(2, h.clients.takeRenewals().size(), "due again a third of a lease later");
  }

  @Test
  void reservationsWithoutALeaseAndEndedRequestsAreNotRenewed() {
    h.cluster.setState("d2", NodeState.DRAINING);
    reserved("no-lease", "t-0", 0);
    Submitted ended = reserved("ended", "t-e", LEASE_MILLIS);
    Submitted waiting = h.submit("waiting"); // still reserving: holds nothing
    h.clients.nextReserve();
    ended.handle().cancel("client cancelled");

    h.ticker.advance(Duration.ofMinutes(1));
    h.router.leaseRenewer().renewDue();
    assertEquals(List.of(), h.clients.takeRenewals());
    assertEquals(RequestState.RESERVING, waiting.handle().state());
  }

  @Test
  void aMigratedSequencesNewReservationIsRenewedOnItsNewNode() {
    h.cluster.setState("d2", NodeState.DRAINING);
    decoding("r", "t-r", LEASE_MILLIS);
    OpenStream s = h.clients.nextStream();
    s.delta(10);
    h.ticker.advance(Duration.ofMillis(600));
    s.migrated(d2, "t-moved", 10);
    h.clients.nextStream();

    // The target reserved before the router heard of the move: renewed at once, on d2 only.
    h.router.leaseRenewer().renewDue();
    assertEquals(
        List.of(new Renewal("d2", List.of("t-moved"))),
        h.clients.takeRenewals(),
        "the moved reservation is renewed at once, the old one not at all");

    h.ticker.advance(Duration.ofMillis(999)); // less than a third of the lease after that renewal
    h.router.leaseRenewer().renewDue();
    assertEquals(List.of(), h.clients.takeRenewals());

    h.ticker.advance(Duration.ofMillis(1));
    h.router.leaseRenewer().renewDue();
    assertEquals(List.of(new Renewal("d2", List.of("t-moved"))), h.clients.takeRenewals());
  }

  private Submitted reserved(String id, String transferId, long leaseMillis) {
    Submitted r = h.submit(id);
    h.clients.nextReserve().grant(transferId, leaseMillis);
    h.clients.nextPrefill();
    return r;
  }

  private Submitted decoding(String id, String transferId, long leaseMillis) {
    Submitted r = h.submit(id);
    h.clients.nextReserve().grant(transferId, leaseMillis);
    h.clients.nextPrefill().firstToken(10);
    return r;
  }

  private static List<Renewal> sorted(List<Renewal> renewals) {
    return renewals.stream()
        .map(r -> new Renewal(r.nodeId(), r.transferIds().stream().sorted().toList()))
        .sorted(Comparator.comparing(Renewal::nodeId))
        .toList();
  }
}
