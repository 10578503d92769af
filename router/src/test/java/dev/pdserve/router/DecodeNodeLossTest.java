package dev.pdserve.router;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.router.InMemoryNodeClients.OpenStream;
import dev.pdserve.router.InMemoryNodeClients.PrefillAttempt;
import dev.pdserve.router.InMemoryNodeClients.Renewal;
import dev.pdserve.router.InMemoryNodeClients.ReserveAttempt;
import dev.pdserve.router.NodeClients.Reserved;
import dev.pdserve.router.RouterHarness.Submitted;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A request whose decode stream breaks (its node died, shut down, or its connection was reset)
 * continues on another decode node from the tokens its client received: a reservation for the
 * prompt and those tokens, their KV prefilled again, the stream resumed; the client sees every
 * token once, and in the end one completion or one UNAVAILABLE that says what happened.
 */
class DecodeNodeLossTest {
  private static final long LEASE_MILLIS = 3000;
  private static final ServingException BROKEN =
      ServingException.unavailable("decode on decode node d1: Network closed for unknown reason");

  private RouterHarness h;

  @BeforeEach
  void setUp() {
    h = harness(FailureHandling.DEFAULTS);
  }

  @AfterEach
  void tearDown() {
    h.close();
  }

  private static RouterHarness harness(FailureHandling failures) {
    RouterHarness h =
        new RouterHarness(
            new RouterOptions(4, 4, 2), PrefixRouting.disabled(), failures, OverloadLimits.off());
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.add("d1", NodeRole.DECODE);
    h.cluster.add("d2", NodeRole.DECODE);
    return h;
  }

  @Test
  void aBrokenStreamContinuesOnAnotherDecodeNodeWithEveryTokenOnce() {
    Submitted r = decodingOnD1(h, "r", 16);
    OpenStream first = h.clients.nextStream();
    first.delta(10);
    first.delta(11, 12);
    h.cluster.setState("d2", NodeState.ACTIVE);
    first.fail(BROKEN);

    assertEquals(RequestState.RESERVING, r.handle().state());
    assertEquals(List.of(RouterMetrics.MIGRATION_DECODE_NODE_LOST), h.metrics.migrations());
    ReserveAttempt reserve = h.clients.nextReserve();
    assertEquals("d2", reserve.node().id(), "the lost node is not asked again");
    assertEquals(
        new NodeClients.ReserveCall("r", 4 + 2, 16 - 3 + 1, 0),
        reserve.call(),
        "KV for the prompt and every delivered token but the last; room for the rest");
    Reserved fresh = reserve.grant("t-2", LEASE_MILLIS);

    PrefillAttempt prefill = h.clients.nextPrefill();
    assertArrayEquals(
        new int[] {40, 41, 42, 43, 10, 11},
        prefill.call().prompt(),
        "the prefill computes the prompt and the delivered tokens but the last");
    assertEquals(fresh, prefill.call().target());
    assertEquals(7, prefill.call().seed(), "the request's seed: sampling continues exactly");
    prefill.firstToken(12); // the client has it already

    OpenStream resumed = h.clients.nextStream();
    assertEquals("d2", resumed.node().id());
    assertNotNull(resumed.resume(), "the new stream resumes the sequence");
    assertArrayEquals(new int[] {10, 11, 12}, resumed.resume().generated());
    assertEquals(fresh, resumed.resume().reservation());
    assertEquals(7, resumed.resume().seed());
    assertFalse(resumed.resume().localPrefill(), "its KV was pushed by the prefill node");
    assertEquals(RequestState.DECODING, r.handle().state());

    resumed.delta(13);
    resumed.delta(14, 15);
    resumed.complete("length", 6);
    assertEquals("length", r.sink().awaitCompletion());
    assertEquals(List.of(10, 11, 12, 13, 14, 15), r.sink().tokens(), "each token exactly once");
    assertEquals(List.of(-10f, -11f, -12f, -13f, -14f, -15f), r.sink().logprobs());
    r.sink().assertOneOutcome();
    assertEquals(List.of(), h.metrics.rejected());
    assertEquals(List.of(), h.clients.releases(), "the streams owned their reservations");
  }

  @Test
  void aDecodeNodeThatLostTheReservationIsLeftAndTheRequestContinuesElsewhere() {
    // A node frozen past its reservation's lease wakes, sweeps the reservation, and answers the
    // stream with NOT_FOUND: nothing runs there, so the request moves on like a lost node's.
    Submitted r = decodingOnD1(h, "r", 16);
    OpenStream first = h.clients.nextStream();
    first.delta(10);
    h.cluster.setState("d2", NodeState.ACTIVE);
    first.fail(
        ServingException.notFound(
            "no KV reservation t-1 on this decode node (expired or released)"));

    assertEquals(List.of(RouterMetrics.MIGRATION_DECODE_STATE_LOST), h.metrics.migrations());
    ReserveAttempt reserve = h.clients.nextReserve();
    assertEquals("d2", reserve.node().id());
    reserve.grant("t-2", LEASE_MILLIS);
    h.clients.nextPrefill().firstToken(10);
    OpenStream resumed = h.clients.nextStream();
    assertEquals("d2", resumed.node().id());
    resumed.delta(11);
    resumed.complete("length", 2);
    assertEquals("length", r.sink().awaitCompletion());
    assertEquals(List.of(10, 11), r.sink().tokens());
    r.sink().assertOneOutcome();
  }

  @Test
  void leasesAreRenewedOnTheNewReservationOnly() {
    decodingOnD1(h, "r", 16);
    OpenStream first = h.clients.nextStream();
    first.delta(10);
    h.cluster.setState("d2", NodeState.ACTIVE);
    first.fail(BROKEN);
    h.clients.nextReserve().grant("t-2", LEASE_MILLIS);
    h.clients.nextPrefill().firstToken(10);
    h.clients.nextStream();
    h.clients.takeRenewals();

    h.ticker.advance(Duration.ofMillis(LEASE_MILLIS));
    h.router.leaseRenewer().renewDue();
    assertEquals(
        List.of(new Renewal("d2", List.of("t-2"))),
        h.clients.takeRenewals(),
        "the lost node's reservation is not renewed: it frees it, or has died with it");
  }

  @Test
  void aLossBeforeAnyTokenStartsTheRequestOverOnAnotherNode() {
    Submitted r = decodingOnD1(h, "r", 16);
    OpenStream first = h.clients.nextStream();
    h.cluster.setState("d2", NodeState.ACTIVE);
    first.fail(BROKEN);

    ReserveAttempt reserve = h.clients.nextReserve();
    assertEquals(new NodeClients.ReserveCall("r", 4, 16, 0), reserve.call());
    reserve.grant("t-2", 0);
    PrefillAttempt prefill = h.clients.nextPrefill();
    assertArrayEquals(new int[] {40, 41, 42, 43}, prefill.call().prompt());
    prefill.firstToken(20);
    OpenStream again = h.clients.nextStream();
    assertNotNull(again.decode(), "nothing was delivered: a fresh decode, not a resume");
    assertEquals(20, again.decode().first().token());
    again.delta(20);
    again.complete("stop", 1);
    assertEquals("stop", r.sink().awaitCompletion());
    assertEquals(List.of(20), r.sink().tokens());
  }

  @Test
  void aLossAfterTheLastTokenCompletesWithWhatWasDelivered() {
    Submitted r = decodingOnD1(h, "r", 3); // these clients cannot replay without a prefill
    OpenStream first = h.clients.nextStream();
    first.delta(10, 11, 12);
    first.fail(BROKEN);
    assertEquals("length", r.sink().awaitCompletion());
    assertEquals(3, r.sink().completionTokens());
    assertEquals(List.of(10, 11, 12), r.sink().tokens());
    h.clients.assertNoMoreCalls();
  }

  @Test
  void aLossAfterTheLastTokenIsFinishedByAnotherDecodeNodesReplay() {
    h.clients.supportLocalPrefill(true);
    Submitted r = decodingOnD1(h, "r", 3);
    OpenStream first = h.clients.nextStream();
    first.delta(10, 11, 12);
    h.cluster.setState("d2", NodeState.ACTIVE);
    first.fail(BROKEN);
    ReserveAttempt reserve = h.clients.nextReserve();
    assertEquals(new NodeClients.ReserveCall("r", 4 + 2, 1, 0), reserve.call());
    reserve.grant("t-2", 0);
    OpenStream replay = h.clients.nextStream();
    assertTrue(replay.resume().localPrefill(), "no prefill: the replay finishes it first");
    assertArrayEquals(new int[] {10, 11, 12}, replay.resume().generated());
    replay.complete("stop", 3); // its last token was a stop token
    assertEquals("stop", r.sink().awaitCompletion(), "the true finish reason");
    assertEquals(List.of(10, 11, 12), r.sink().tokens());
  }

  @Test
  void aShortContinuationResumesWithLocalPrefill() {
    RouterHarness local =
        new RouterHarness(
            new RouterOptions(4, 4, 2),
            new PrefixRouting(
                null,
                PrefixRouting.DEFAULT_CACHED_TOKEN_WEIGHT,
                PrefixRouting.DEFAULT_TRACKED_BLOCKS_PER_NODE,
                6),
            FailureHandling.DEFAULTS,
            OverloadLimits.off());
    try {
      local.clients.supportLocalPrefill(true);
      local.cluster.add("p1", NodeRole.PREFILL);
      local.cluster.add("d1", NodeRole.DECODE);
      local.cluster.add("d2", NodeRole.DECODE);
      local.cluster.setState("d2", NodeState.DRAINING);
      Submitted r = local.submit("r", 4, 0);
      local.clients.nextReserve().grant("t-1", 0);
      OpenStream first = local.clients.nextStream();
      assertTrue(first.decode().localPrefill());
      first.delta(10, 11, 12); // prompt 4 + 2 = 6 KV positions: within the threshold
      local.cluster.setState("d2", NodeState.ACTIVE);
      first.fail(BROKEN);
      ReserveAttempt reserve = local.clients.nextReserve();
      assertEquals(new NodeClients.ReserveCall("r", 6, 14, 0), reserve.call());
      Reserved fresh = reserve.grant("t-2", 0);
      OpenStream resumed = local.clients.nextStream();
      assertTrue(resumed.resume().localPrefill(), "no prefill node: the decode node computes it");
      assertEquals(fresh, resumed.resume().reservation());
      assertArrayEquals(new int[] {10, 11, 12}, resumed.resume().generated());
      local.clients.assertNoMoreCalls(); // no prefill call
      resumed.delta(13);
      resumed.complete("stop", 4);
      assertEquals("stop", r.sink().awaitCompletion());
      assertEquals(List.of(10, 11, 12, 13), r.sink().tokens());
    } finally {
      local.close();
    }
  }

  @Test
  void pastTheMigrationLimitTheRequestFailsOnceSayingWhatHappened() {
    RouterHarness limited = harness(FailureHandling.DEFAULTS.withMigrationLimit(1));
    try {
      Submitted r = decodingOnD1(limited, "r", 16);
      OpenStream first = limited.clients.nextStream();
      first.delta(10, 11);
      limited.cluster.setState("d2", NodeState.ACTIVE);
      first.fail(BROKEN);
      limited.clients.nextReserve().grant("t-2", 0);
      limited.clients.nextPrefill().firstToken(11);
      OpenStream second = limited.clients.nextStream();
      second.delta(12);
      second.fail(ServingException.unavailable("decode on decode node d2: Connection reset"));

      ServingException e = r.sink().awaitError();
      assertEquals(ServingException.Kind.UNAVAILABLE, e.kind(), e.getMessage());
      assertEquals(
          "request r lost its decode node 2 times (d1 (UNAVAILABLE: decode on decode node d1:"
              + " Network closed for unknown reason); d2 (UNAVAILABLE: decode on decode node d2:"
              + " Connection reset)) after 3 of its tokens were delivered, and its moves to"
              + " another decode node are spent (pdserve.router.migration-limit = 1); nothing of"
              + " it runs any more, so retrying the request is safe",
          e.getMessage());
      r.sink().assertOneOutcome();
      assertEquals(List.of(10, 11, 12), r.sink().tokens());
      assertEquals(List.of(RouterMetrics.REJECT_MIGRATION_LIMIT), limited.metrics.rejected());
      assertEquals(List.of(RouterMetrics.MIGRATION_DECODE_NODE_LOST), limited.metrics.migrations());
      limited.clients.assertNoMoreCalls();
      assertEquals(0, limited.router.inFlight());
    } finally {
      limited.close();
    }
  }

  @Test
  void aMigrationLimitOfZeroFailsAtTheFirstLoss() {
    RouterHarness never = harness(FailureHandling.DEFAULTS.withMigrationLimit(0));
    try {
      Submitted r = decodingOnD1(never, "r", 16);
      OpenStream first = never.clients.nextStream();
      first.delta(10);
      first.fail(BROKEN);
      ServingException e = r.sink().awaitError();
      assertEquals(
          "request r lost its decode node (d1 (UNAVAILABLE: decode on decode node d1: Network"
              + " closed for unknown reason)) after 1 of its tokens were delivered, and its moves"
              + " to another decode node are spent (pdserve.router.migration-limit = 0); nothing"
              + " of it runs any more, so retrying the request is safe",
          e.getMessage());
      never.clients.assertNoMoreCalls();
      assertEquals(List.of(), never.metrics.migrations());
    } finally {
      never.close();
    }
  }

  @Test
  void withNoOtherDecodeNodeTheRequestFailsSayingItWasLost() {
    Submitted r = decodingOnD1(h, "r", 16); // d2 stays DRAINING: no other node takes work
    OpenStream first = h.clients.nextStream();
    first.delta(10, 11);
    first.fail(BROKEN);

    ServingException e = r.sink().awaitError();
    assertEquals(ServingException.Kind.UNAVAILABLE, e.kind(), e.getMessage());
    assertEquals(
        "request r lost its decode node (d1 (UNAVAILABLE: decode on decode node d1: Network"
            + " closed for unknown reason)) after 2 of its tokens were delivered, and continuing"
            + " it elsewhere failed: no other decode node could take it (asked []; decode nodes:"
            + " d1=ACTIVE, d2=DRAINING); nothing of it runs any more, so retrying the request is"
            + " safe",
        e.getMessage());
    assertEquals(List.of(RouterMetrics.REJECT_MIGRATION_FAILED), h.metrics.rejected());
    r.sink().assertOneOutcome();
  }

  @Test
  void whenEveryOtherDecodeNodeRefusesTheContinuationFailsWithUnavailable() {
    Submitted r = decodingOnD1(h, "r", 16);
    OpenStream first = h.clients.nextStream();
    first.delta(10);
    h.cluster.setState("d2", NodeState.ACTIVE);
    first.fail(BROKEN);
    h.clients.nextReserve().refuse(ServingException.exhausted("decode KV pool is full"));
    ServingException e = r.sink().awaitError();
    assertEquals(ServingException.Kind.UNAVAILABLE, e.kind(), e.getMessage());
    assertTrue(
        e.getMessage().contains("no other decode node could take it (asked [d2]"), e.getMessage());
  }

  @Test
  void errorsThatAreAnswersDoNotMigrate() {
    List<ServingException> answers =
        List.of(
            ServingException.cancelled("cancelled by the decode node"),
            ServingException.deadline("deadline exceeded"),
            ServingException.invalid("bad sampling parameters"),
            ServingException.exhausted("decode KV pool is full"),
            new ServingException(ServingException.Kind.INTERNAL, "a bug"));
    for (ServingException answer : answers) {
      RouterHarness one = harness(FailureHandling.DEFAULTS);
      try {
        one.cluster.setState("d2", NodeState.DRAINING);
        Submitted r = one.submit("r");
        one.clients.nextReserve().grant("t-r", 0);
        one.clients.nextPrefill().firstToken(10);
        OpenStream s = one.clients.nextStream();
        one.cluster.setState("d2", NodeState.ACTIVE);
        s.delta(10);
        s.fail(answer);
        assertEquals(answer, r.sink().awaitError(), "the node's answer reaches the client");
        one.clients.assertNoMoreCalls();
        assertEquals(List.of(), one.metrics.migrations(), answer + " must not migrate");
      } finally {
        one.close();
      }
    }
  }

  @Test
  void aDecodeSideAbortNobodyAskedForDoesNotMigrate() {
    Submitted r = decodingOnD1(h, "r", 16);
    OpenStream s = h.clients.nextStream();
    h.cluster.setState("d2", NodeState.ACTIVE);
    s.delta(10);
    s.complete("abort", 1);
    assertEquals(ServingException.Kind.UNAVAILABLE, r.sink().awaitError().kind());
    assertEquals(List.of("decode_aborted"), h.metrics.rejected());
    assertEquals(List.of(), h.metrics.migrations());
    h.clients.assertNoMoreCalls();
  }

  @Test
  void aBrokenStreamAfterTheClientCancelledDoesNotMigrate() {
    Submitted r = decodingOnD1(h, "r", 16);
    OpenStream s = h.clients.nextStream();
    h.cluster.setState("d2", NodeState.ACTIVE);
    s.delta(10);
    r.handle().cancel("client cancelled");
    s.fail(ServingException.unavailable("decode on decode node d1: Channel shutdown"));
    h.clients.assertNoMoreCalls();
    assertEquals(List.of(), h.metrics.migrations());
    r.sink().assertNoOutcome();
  }

  @Test
  void aCancelWhileTheContinuationReservesReleasesTheLateReservation() {
    Submitted r = decodingOnD1(h, "r", 16);
    OpenStream s = h.clients.nextStream();
    s.delta(10);
    h.cluster.setState("d2", NodeState.ACTIVE);
    s.fail(BROKEN);
    ReserveAttempt reserve = h.clients.nextReserve();
    r.handle().cancel("client cancelled");
    reserve.grant("t-late", 0);
    assertEquals(List.of(new InMemoryNodeClients.Release("d2", "t-late")), h.clients.releases());
    h.clients.assertNoMoreCalls();
    assertEquals(RequestState.FINISHED, r.handle().state());
  }

  /** Submits {@code id} and runs it to DECODING on d1 (d2 drains meanwhile, so it is not used). */
  private static Submitted decodingOnD1(RouterHarness h, String id, int maxTokens) {
    h.cluster.setState("d2", NodeState.DRAINING);
    Submitted r = h.submit(id, 4, 0, maxTokens);
    ReserveAttempt reserve = h.clients.nextReserve();
    assertEquals("d1", reserve.node().id());
    reserve.grant("t-1", LEASE_MILLIS);
    h.clients.nextPrefill().firstToken(10);
    assertEquals(RequestState.DECODING, r.handle().state());
    return r;
  }
}
