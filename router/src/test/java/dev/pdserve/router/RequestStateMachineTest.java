package dev.pdserve.router;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.router.InMemoryNodeClients.OpenStream;
import dev.pdserve.router.InMemoryNodeClients.PrefillAttempt;
import dev.pdserve.router.InMemoryNodeClients.Release;
import dev.pdserve.router.InMemoryNodeClients.ReserveAttempt;
import dev.pdserve.router.NodeClients.Reserved;
import dev.pdserve.router.RecordingMetrics.Finished;
import dev.pdserve.router.RouterHarness.Submitted;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A request's run: QUEUED → RESERVING → PREFILLING → DECODING → FINISHED, one outcome per request,
 * and what cancelling or aborting stops in each state.
 */
class RequestStateMachineTest {
  private RouterHarness h;

  @BeforeEach
  void setUp() {
    h = RouterHarness.withOptions(4, 4, 1);
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.add("d1", NodeRole.DECODE);
  }

  @AfterEach
  void tearDown() {
    h.close();
  }

  @Test
  void aRequestRunsThroughEveryStateAndCompletesOnce() {
    long deadline = h.deadlineIn(Duration.ofMinutes(1));
    Submitted r = h.submit("r", 5, deadline);
    assertEquals(RequestState.RESERVING, r.handle().state());
    ReserveAttempt reserve = h.clients.nextReserve();
    assertEquals(new NodeClients.ReserveCall("r", 5, 16, deadline), reserve.call());

    h.ticker.advance(Duration.ofMillis(10));
    Reserved granted = reserve.grant("t-1", 0);
    assertEquals(RequestState.PREFILLING, r.handle().state());
    PrefillAttempt prefill = h.clients.nextPrefill();
    assertEquals("p1", prefill.node().id());
    assertEquals(granted, prefill.call().target());
    assertEquals(7, prefill.call().seed());
    assertEquals(deadline, prefill.call().deadlineNanos());
    assertEquals(List.of(40, 41, 42, 43, 44), ints(prefill.call().prompt()));

    h.ticker.advance(Duration.ofMillis(30));
    prefill.firstToken(77);
    assertEquals(RequestState.DECODING, r.handle().state());
    OpenStream stream = h.clients.nextStream();
    assertEquals("d1", stream.node().id());
    assertEquals(granted, stream.decode().reservation());
    assertEquals(77, stream.decode().first().token());
    assertEquals(7, stream.decode().seed());
    assertEquals(deadline, stream.decode().deadlineNanos());

    stream.delta(77);
    h.ticker.advance(Duration.ofMillis(5));
    stream.delta(78, 79);
    h.ticker.advance(Duration.ofMillis(5));
    stream.complete("stop", 3);
    stream.fail(ServingException.unavailable("a late error after the completion"));

    assertEquals("stop", r.sink().awaitCompletion());
    r.sink().assertOneOutcome();
    assertEquals(List.of(77, 78, 79), r.sink().tokens());
    assertEquals(List.of(-77f, -78f, -79f), r.sink().logprobs());
    assertEquals(5, r.sink().promptTokens());
    assertEquals(3, r.sink().completionTokens());
    assertEquals(RequestState.FINISHED, r.handle().state());
    assertEquals(0, h.router.inFlight());
    assertEquals(0, h.router.running());
    assertEquals(List.of(), h.clients.releases(), "the decode stream owned the reservation");
    assertFalse(stream.handle().cancelled(), "a finished stream is not cancelled");
    // timings on the router's clock: 0 queued, 40 ms to the first token, 5 ms between deltas
    assertEquals(List.of(Duration.ofMillis(40).toNanos()), h.metrics.ttfts());
    assertEquals(List.of(Duration.ofMillis(5).toNanos()), h.metrics.interTokens());
    assertEquals(
        List.of(
            new Finished(
                "stop",
                0,
                Duration.ofMillis(40).toNanos(),
                Duration.ofMillis(5).toNanos(),
                Duration.ofMillis(50).toNanos())),
        h.metrics.finished());
  }

  @Test
  void aTransitionOutOfOrderIsRefusedLoudly() {
    Submitted r = h.submit("r");
    IllegalStateException e =
        assertThrows(IllegalStateException.class, () -> r.handle().startDecoding());
    assertEquals("request r cannot go from RESERVING to DECODING", e.getMessage());
  }

  @Test
  void aDecodeErrorEndsTheRequestOnceWithThatError() {
    Submitted r = decoding("r");
    OpenStream s = h.clients.nextStream();
    s.delta(1);
    // (UNAVAILABLE — the node is gone — continues elsewhere instead: DecodeNodeLossTest)
    s.fail(new ServingException(ServingException.Kind.INTERNAL, "decode step hit a bug"));
    s.complete("stop", 1);
    ServingException e = r.sink().awaitError();
    assertEquals("decode step hit a bug", e.getMessage());
    r.sink().assertOneOutcome();
    assertEquals(List.of("internal"), h.metrics.rejected());
  }

  @Test
  void cancelWhileReservingReleasesTheReservationThatArrivesLate() {
    Submitted r = h.submit("r");
    ReserveAttempt reserve = h.clients.nextReserve();
    r.handle().cancel("client cancelled");
    assertEquals(RequestState.FINISHED, r.handle().state());
    assertEquals(0, h.router.running(), "the slot is free at once");

    reserve.grant("t-late", 0);
    assertEquals(List.of(new Release("d1", "t-late")), h.clients.releases());
    h.clients.assertNoMoreCalls();
    r.sink().assertNoOutcome();
    assertEquals(List.of(RouterMetrics.REJECT_CANCELLED), h.metrics.rejected());
  }

  @Test
  void cancelWhilePrefillingCancelsThePrefillAndReleasesTheReservationOnce() {
    Submitted r = h.submit("r");
    h.clients.nextReserve().grant("t-1", 0);
    PrefillAttempt prefill = h.clients.nextPrefill();

    r.handle().cancel("client cancelled");
    assertEquals(List.of("client cancelled"), prefill.handle().cancels());
    assertEquals(List.of(new Release("d1", "t-1")), h.clients.releases());

    prefill.firstToken(5); // the prefill had finished anyway
    h.clients.assertNoMoreCalls(); // no decode stream
    assertEquals(List.of(new Release("d1", "t-1")), h.clients.releases(), "released once");
    r.sink().assertNoOutcome();
  }

  @Test
  void cancelWhileDecodingCancelsTheStreamAndLetsItFreeTheKv() {
    Submitted r = decoding("r");
    OpenStream s = h.clients.nextStream();
    s.delta(1, 2);

    r.handle().cancel("deadline exceeded");
    assertEquals(List.of("deadline exceeded"), s.handle().cancels());
    assertEquals(List.of(), h.clients.releases(), "the decode node frees a cancelled stream's KV");
    s.delta(3);
    s.fail(ServingException.cancelled("cancelled by the router"));
    assertEquals(List.of(1, 2), r.sink().tokens(), "nothing is sent after the cancel");
    r.sink().assertNoOutcome();
  }

  @Test
  void cancelAfterTheDeadlineCountsAsDeadline() {
    Submitted r = h.submit("r", 4, h.deadlineIn(Duration.ofSeconds(1)));
    h.ticker.advance(Duration.ofSeconds(1));
    r.handle().cancel("deadline exceeded");
    assertEquals(List.of(RouterMetrics.REJECT_DEADLINE), h.metrics.rejected());
  }

  @Test
  void abortWhileQueuedCompletesWithAbort() {
    RouterHarness small = RouterHarness.withOptions(1, 1, 1);
    try {
      small.cluster.add("p1", NodeRole.PREFILL);
      small.cluster.add("d1", NodeRole.DECODE);
      small.submit("a");
      Submitted b = small.submit("b");
      assertTrue(small.router.abort("b"));
      assertEquals("abort", b.sink().awaitCompletion());
      assertEquals(0, small.router.queued());
    } finally {
      small.close();
    }
  }

  @Test
  void abortWhilePrefillingCompletesWithAbortAndFreesTheKv() {
    Submitted r = h.submit("r");
    h.clients.nextReserve().grant("t-1", 0);
    PrefillAttempt prefill = h.clients.nextPrefill();

    assertTrue(h.router.abort("r"));
    assertEquals("abort", r.sink().awaitCompletion());
    assertEquals(List.of("aborted by the client"), prefill.handle().cancels());
    assertEquals(List.of(new Release("d1", "t-1")), h.clients.releases());
    prefill.fail(ServingException.cancelled("prefill cancelled"));
    r.sink().assertOneOutcome();
  }

  @Test
  void abortWhileDecodingCompletesWithAbortAndTheStreamsOwnEndIsNotSent() {
    Submitted r = decoding("r");
    OpenStream s = h.clients.nextStream();
    s.delta(1);

    assertTrue(h.router.abort("r"));
    assertEquals(List.of("aborted by the client"), s.handle().cancels());
    s.complete("abort", 1); // the decode node confirms: not a decode_aborted
    s.fail(ServingException.cancelled("cancelled"));
    assertEquals(List.of("completion abort"), r.sink().outcomes());
    assertEquals(
        List.of("abort"), h.metrics.finished().stream().map(Finished::finishReason).toList());
    assertEquals(List.of(), h.metrics.rejected());
    assertFalse(h.router.abort("r"), "an ended request is not found");
  }

  @Test
  void abortOfAnUnknownRequestFindsNothing() {
    assertFalse(h.router.abort("nope"));
  }

  /** Submits {@code id} and runs it to DECODING (its stream is next in the clients). */
  private Submitted decoding(String id) {
    Submitted r = h.submit(id);
    h.clients.nextReserve().grant("t-" + id, 0);
    h.clients.nextPrefill().firstToken(1);
    assertEquals(RequestState.DECODING, r.handle().state());
    return r;
  }

  private static List<Integer> ints(int[] a) {
    return Arrays.stream(a).boxed().toList();
  }
}
