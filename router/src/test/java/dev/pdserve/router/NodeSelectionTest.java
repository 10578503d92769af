package dev.pdserve.router;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.router.InMemoryNodeClients.OpenStream;
import dev.pdserve.router.InMemoryNodeClients.PrefillAttempt;
import dev.pdserve.router.InMemoryNodeClients.Release;
import dev.pdserve.router.InMemoryNodeClients.ReserveAttempt;
import dev.pdserve.router.NodeClients.Reserved;
import dev.pdserve.router.RouterHarness.Submitted;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Which nodes a request goes to, and what happens when they cannot take it. */
class NodeSelectionTest {
  private RouterHarness h = RouterHarness.withOptions(8, 8, 2);

  @AfterEach
  void tearDown() {
    h.close();
  }

  @Test
  void noActivePrefillNodeRefusesWithUnavailable() {
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.setState("p1", NodeState.DRAINING);
    h.cluster.add("d1", NodeRole.DECODE);
    ServingException e = assertThrows(ServingException.class, () -> h.submit("r"));
    assertEquals(ServingException.Kind.UNAVAILABLE, e.kind(), e.getMessage());
    assertEquals(
        "no ACTIVE prefill node in the cluster (prefill nodes: p1=DRAINING); retry when one is up",
        e.getMessage());
    assertEquals(List.of(RouterMetrics.REJECT_NO_PREFILL_NODE), h.metrics.rejected());
    assertEquals(0, h.router.inFlight());
  }

  @Test
  void noActiveDecodeNodeRefusesWithUnavailable() {
    h.cluster.add("p1", NodeRole.PREFILL);
    ServingException e = assertThrows(ServingException.class, () -> h.submit("r"));
    assertEquals(ServingException.Kind.UNAVAILABLE, e.kind(), e.getMessage());
    assertEquals(
        "no ACTIVE decode node in the cluster (decode nodes: none registered); retry when one is up",
        e.getMessage());
    assertEquals(List.of(RouterMetrics.REJECT_NO_DECODE_NODE), h.metrics.rejected());
  }

  @Test
  void aRefusedReservationTriesTheNextDecodeNode() {
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.add("d1", NodeRole.DECODE);
    h.cluster.add("d2", NodeRole.DECODE);
    Submitted r = h.submit("r");

    ReserveAttempt first = h.clients.nextReserve();
    first.refuse(ServingException.exhausted("no free KV blocks"));
    ReserveAttempt second = h.clients.nextReserve();
    assertNotEquals(first.node().id(), second.node().id(), "the refusing node is not asked again");
    Reserved granted = second.grant("t-2", 0);

    PrefillAttempt prefill = h.clients.nextPrefill();
    assertEquals(granted, prefill.call().target(), "the prefill pushes into the granted KV");
    prefill.firstToken(99);
    OpenStream stream = h.clients.nextStream();
    assertEquals(second.node().id(), stream.node().id(), "decode runs where the KV is");
    assertEquals(RequestState.DECODING, r.handle().state());
  }

  @Test
  void anUnavailableDecodeNodeIsSkippedLikeAFullOne() {
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.add("d1", NodeRole.DECODE);
    h.cluster.add("d2", NodeRole.DECODE);
    h.submit("r");
    h.clients.nextReserve().refuse(ServingException.unavailable("connection refused"));
    h.clients.nextReserve().grant("t", 0);
    h.clients.nextPrefill();
  }

  @Test
  void everyDecodeNodeRefusingEndsWithResourceExhausted() {
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.add("d1", NodeRole.DECODE);
    h.cluster.add("d2", NodeRole.DECODE);
    Submitted r = h.submit("r");
    ReserveAttempt a = h.clients.nextReserve();
    a.refuse(ServingException.exhausted("full"));
    ReserveAttempt b = h.clients.nextReserve();
    b.refuse(ServingException.exhausted("full"));

    ServingException e = r.sink().awaitError();
    assertEquals(ServingException.Kind.RESOURCE_EXHAUSTED, e.kind(), e.getMessage());
    assertEquals(
        "every decode node refused the request's KV reservation (tried ["
            + a.node().id()
            + ", "
            + b.node().id()
            + "]); retry after 500 ms",
        e.getMessage());
    assertEquals(Set.of("d1", "d2"), Set.of(a.node().id(), b.node().id()));
    assertEquals(List.of(RouterMetrics.REJECT_KV_EXHAUSTED), h.metrics.rejected());
    r.sink().assertOneOutcome();
    h.clients.assertNoMoreCalls();
  }

  @Test
  void aReservationErrorOtherThanCapacityIsNotRetried() {
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.add("d1", NodeRole.DECODE);
    h.cluster.add("d2", NodeRole.DECODE);
    Submitted r = h.submit("r");
    h.clients.nextReserve().refuse(ServingException.invalid("prompt too long for this node"));
    ServingException e = r.sink().awaitError();
    assertEquals(ServingException.Kind.INVALID_ARGUMENT, e.kind(), e.getMessage());
    h.clients.assertNoMoreCalls();
  }

  @Test
  void anUnavailablePrefillNodeIsRetriedOnAnotherIntoAFreshReservationUpToPrefillAttempts() {
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.add("p2", NodeRole.PREFILL);
    h.cluster.add("p3", NodeRole.PREFILL);
    h.cluster.add("d1", NodeRole.DECODE);
    Submitted r = h.submit("r");
    h.clients.nextReserve().grant("t-1", 0);

    PrefillAttempt first = h.clients.nextPrefill();
    first.fail(ServingException.unavailable("prefill node going away"));
    assertEquals(
        List.of(new Release("d1", "t-1")),
        h.clients.releases(),
        "the half-pushed reservation is released (its transfer cancelled) before the retry");
    assertEquals(RequestState.RESERVING, r.handle().state());
    Reserved fresh = h.clients.nextReserve().grant("t-2", 0);
    PrefillAttempt second = h.clients.nextPrefill();
    assertNotEquals(first.node().id(), second.node().id(), "retried on another prefill node");
    assertEquals(fresh, second.call().target(), "the retry pushes into the fresh reservation");
    assertEquals(RequestState.PREFILLING, r.handle().state());
    second.fail(ServingException.unavailable("this one too"));

    ServingException e = r.sink().awaitError();
    assertEquals(ServingException.Kind.UNAVAILABLE, e.kind(), e.getMessage());
    assertEquals("this one too", e.getMessage(), "the last attempt's error reaches the client");
    h.clients.assertNoMoreCalls(); // prefillAttempts = 2: no third node
    assertEquals(
        List.of(new Release("d1", "t-1"), new Release("d1", "t-2")),
        h.clients.releases(),
        "each reservation is released once");
    assertEquals(List.of(RouterMetrics.MIGRATION_PREFILL_NODE_LOST), h.metrics.migrations());
  }

  @Test
  void aPrefillRetryThatSucceedsDecodes() {
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.add("p2", NodeRole.PREFILL);
    h.cluster.add("d1", NodeRole.DECODE);
    Submitted r = h.submit("r");
    h.clients.nextReserve().grant("t-1", 0);
    h.clients.nextPrefill().fail(ServingException.unavailable("gone"));
    Reserved fresh = h.clients.nextReserve().grant("t-2", 0);
    h.clients.nextPrefill().firstToken(50);
    OpenStream s = h.clients.nextStream();
    assertEquals(50, s.decode().first().token());
    assertEquals(fresh, s.decode().reservation(), "decode joins the fresh reservation");
    s.delta(50, 51);
    s.complete("stop", 2);
    assertEquals("stop", r.sink().awaitCompletion());
    assertEquals(List.of(50, 51), r.sink().tokens());
    assertEquals(
        List.of(new Release("d1", "t-1")),
        h.clients.releases(),
        "only the failed attempt's reservation is released; the decode stream owns the new one");
  }

  @Test
  void aPrefillErrorOtherThanUnavailableIsNotRetried() {
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.add("p2", NodeRole.PREFILL);
    h.cluster.add("d1", NodeRole.DECODE);
    Submitted r = h.submit("r");
    h.clients.nextReserve().grant("t-1", 0);
    h.clients.nextPrefill().fail(ServingException.invalid("bad sampling parameters"));
    assertEquals(ServingException.Kind.INVALID_ARGUMENT, r.sink().awaitError().kind());
    h.clients.assertNoMoreCalls();
    assertEquals(List.of(new Release("d1", "t-1")), h.clients.releases());
    assertEquals(List.of(RouterMetrics.REJECT_INVALID_ARGUMENT), h.metrics.rejected());
  }

  @Test
  void aPrefillNodeGoneByTheTimeTheKvIsReservedEndsWithUnavailable() {
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.add("d1", NodeRole.DECODE);
    Submitted r = h.submit("r");
    h.cluster.setState("p1", NodeState.DRAINING);
    h.clients.nextReserve().grant("t-1", 0);
    ServingException e = r.sink().awaitError();
    assertEquals(ServingException.Kind.UNAVAILABLE, e.kind(), e.getMessage());
    assertEquals(
        "no ACTIVE prefill node could take request r (tried []; prefill nodes: p1=DRAINING)",
        e.getMessage());
    assertEquals(List.of(new Release("d1", "t-1")), h.clients.releases());
  }
}
