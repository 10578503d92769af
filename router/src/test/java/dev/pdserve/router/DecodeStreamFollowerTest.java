package dev.pdserve.router;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.router.InMemoryNodeClients.OpenStream;
import dev.pdserve.router.InMemoryNodeClients.Release;
import dev.pdserve.router.RouterHarness.Submitted;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Following a decode stream through migrations, each token delivered once. */
class DecodeStreamFollowerTest {
  private static final long LEASE_MILLIS = 3000;

  private RouterHarness h;
  private NodeInfo d2;

  @BeforeEach
  void setUp() {
    h = RouterHarness.withOptions(4, 4, 1);
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.add("d1", NodeRole.DECODE);
    d2 = h.cluster.add("d2", NodeRole.DECODE);
    h.cluster.setState("d2", NodeState.DRAINING); // requests reserve on d1; d2 takes migrations
  }

  @AfterEach
  void tearDown() {
    h.close();
  }

  @Test
  void aMigratedStreamContinuesOnTheTargetAndOverlappingTokensAreDropped() {
    Submitted r = decoding("r");
    OpenStream first = h.clients.nextStream();
    first.delta(10, 11);
    first.delta(12, 13);
    // d1 moved the sequence after 3 tokens: the 4th (13) reached the client already
    first.migrated(d2, "t-moved", 10, 11, 12);

    OpenStream resumed = h.clients.nextStream();
    assertEquals("d2", resumed.node().id());
    assertArrayEquals(new int[] {10, 11, 12}, resumed.resume().generated());
    assertEquals("t-moved", resumed.resume().reservation().transferId());
    assertEquals(
        LEASE_MILLIS,
        resumed.resume().reservation().leaseMillis(),
        "the target's reservation has the cluster's lease");
    assertEquals(7, resumed.resume().seed());
    assertEquals(RequestState.DECODING, r.handle().state());

    resumed.delta(13, 14); // index 3 again (13) then 4
    resumed.delta(15);
    resumed.complete("length", 6);

    assertEquals("length", r.sink().awaitCompletion());
    assertEquals(List.of(10, 11, 12, 13, 14, 15), r.sink().tokens(), "each token exactly once");
    assertEquals(
        List.of(-10f, -11f, -12f, -13f, -14f, -15f),
        r.sink().logprobs(),
        "logprobs are trimmed with their tokens");
    r.sink().assertOneOutcome();
    assertEquals(1, h.router.migrationsFollowed());
    assertEquals(List.of(), h.clients.releases());
  }

  @Test
  void aResumedStreamEntirelyRepeatingDeliveredTokensSendsNothing() {
    Submitted r = decoding("r");
    OpenStream first = h.clients.nextStream();
    first.delta(10, 11, 12);
    first.migrated(d2, "t-moved", 10);
    OpenStream resumed = h.clients.nextStream();
    resumed.delta(11, 12);
    assertEquals(List.of(10, 11, 12), r.sink().tokens());
    resumed.delta(13);
    assertEquals(List.of(10, 11, 12, 13), r.sink().tokens());
  }

  @Test
  void aMigrationClaimingMoreTokensThanArrivedFailsWithMigrationLost() {
    Submitted r = decoding("r");
    OpenStream first = h.clients.nextStream();
    first.delta(10, 11);
    first.migrated(d2, "t-moved", 10, 11, 12);

    ServingException e = r.sink().awaitError();
    assertEquals(ServingException.Kind.UNAVAILABLE, e.kind(), e.getMessage());
    assertEquals(
        "decode node d1 moved request r after 3 tokens but only 2 arrived; retry the request",
        e.getMessage());
    assertEquals(List.of("migration_lost"), h.metrics.rejected());
    assertEquals(
        List.of(new Release("d2", "t-moved")),
        h.clients.releases(),
        "the moved sequence's KV on the target is released");
    h.clients.assertNoMoreCalls();
  }

  @Test
  void aMigrationToANodeNotInTheRegistryUsesTheAddressItCarries() {
    decoding("r");
    OpenStream first = h.clients.nextStream();
    first.delta(10);
    NodeInfo unknown =
        new NodeInfo(
            "d9", NodeRole.DECODE, NodeState.ACTIVE, 0, "", "10.0.0.9:7000", "", "", null, 0);
    first.migrated(unknown, "t-9", 10);
    OpenStream resumed = h.clients.nextStream();
    assertEquals("d9", resumed.node().id());
    assertEquals("10.0.0.9:7000", resumed.node().grpcAddress());
  }

  @Test
  void aMigrationAfterTheRequestEndedReleasesTheTargetsReservation() {
    decoding("r");
    OpenStream first = h.clients.nextStream();
    first.delta(10);
    h.router.abort("r");
    first.migrated(d2, "t-moved", 10);
    assertEquals(List.of(new Release("d2", "t-moved")), h.clients.releases());
    h.clients.assertNoMoreCalls();
    assertEquals(0, h.router.migrationsFollowed());
  }

  @Test
  void cancelAfterAMigrationCancelsTheResumedStream() {
    Submitted r = decoding("r");
    OpenStream first = h.clients.nextStream();
    first.delta(10);
    first.migrated(d2, "t-moved", 10);
    OpenStream resumed = h.clients.nextStream();
    r.handle().cancel("client cancelled");
    assertEquals(List.of("client cancelled"), resumed.handle().cancels());
    assertFalse(first.handle().cancelled(), "the first stream had ended");
  }

  @Test
  void aStreamTheDecodeNodeAbortedFailsWithDecodeAborted() {
    Submitted r = decoding("r");
    OpenStream s = h.clients.nextStream();
    s.delta(10, 11);
    s.complete("abort", 2);

    ServingException e = r.sink().awaitError();
    assertEquals(ServingException.Kind.UNAVAILABLE, e.kind(), e.getMessage());
    assertEquals(
        "decode node d1 ended request r after 2 tokens without finishing it (its KV reservation"
            + " was released); retry the request",
        e.getMessage());
    assertEquals(List.of("decode_aborted"), h.metrics.rejected());
    r.sink().assertOneOutcome();
  }

  private Submitted decoding(String id) {
    Submitted r = h.submit(id);
    h.clients.nextReserve().grant("t-" + id, LEASE_MILLIS);
    h.clients.nextPrefill().firstToken(10);
    return r;
  }
}
