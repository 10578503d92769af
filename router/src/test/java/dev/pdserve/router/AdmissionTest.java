package dev.pdserve.router;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.router.RouterHarness.Submitted;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The router's bounded running and queued slots. */
class AdmissionTest {
  private RouterHarness h;

  @BeforeEach
  void setUp() {
    h = RouterHarness.withOptions(1, 2, 1);
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.add("d1", NodeRole.DECODE);
  }

  @AfterEach
  void tearDown() {
    h.close();
  }

  @Test
  void aFullQueueRefusesWithResourceExhaustedAndARetryHint() {
    h.submit("a");
    h.submit("b");
    h.submit("c");
    ServingException e = assertThrows(ServingException.class, () -> h.submit("d"));
    assertEquals(ServingException.Kind.RESOURCE_EXHAUSTED, e.kind(), e.getMessage());
    assertEquals(
        "router queue is full: 1 requests running and 2 waiting (limits 1 and 2);"
            + " retry after 1000 ms",
        e.getMessage());
    assertEquals(List.of(RouterMetrics.REJECT_QUEUE_FULL), h.metrics.rejected());
    assertEquals(3, h.router.inFlight(), "the refused request is not in flight");
    assertEquals(1, h.router.running());
    assertEquals(2, h.router.queued());
    // the refused id is free again: once a slot frees it may be submitted
    h.router.abort("a");
    h.submit("d");
  }

  @Test
  void queuedRequestsStartInArrivalOrderWhenASlotFrees() {
    Submitted a = h.submit("a");
    Submitted b = h.submit("b");
    Submitted c = h.submit("c");
    assertEquals("a", h.clients.nextReserve().call().requestId());
    assertEquals(RequestState.QUEUED, b.handle().state());
    assertEquals(RequestState.QUEUED, c.handle().state());

    assertTrue(h.router.abort("a"));
    assertEquals("completion abort", a.sink().outcomes().get(0));
    assertEquals("b", h.clients.nextReserve().call().requestId(), "the oldest waiting starts");
    assertEquals(RequestState.RESERVING, b.handle().state());
    assertEquals(RequestState.QUEUED, c.handle().state(), "one slot, one start");
    assertEquals(1, h.router.running());
    assertEquals(1, h.router.queued());

    h.router.abort("b");
    assertEquals("c", h.clients.nextReserve().call().requestId());
    assertEquals(0, h.router.queued());
  }

  @Test
  void aDeadlinePassedWhileQueuedEndsWithDeadlineExceeded() {
    h.submit("a");
    Submitted b = h.submit("b", 4, h.deadlineIn(Duration.ofSeconds(1)));
    h.clients.nextReserve();
    h.ticker.advance(Duration.ofSeconds(2));
    h.router.abort("a");

    ServingException e = b.sink().awaitError();
    assertEquals(ServingException.Kind.DEADLINE_EXCEEDED, e.kind(), e.getMessage());
    assertEquals("deadline passed while request b waited in the router queue", e.getMessage());
    b.sink().assertOneOutcome();
    assertEquals(RequestState.FINISHED, b.handle().state());
    assertEquals(List.of(RouterMetrics.REJECT_DEADLINE), h.metrics.rejected());
    h.clients.assertNoMoreCalls();
    assertEquals(0, h.router.inFlight());
  }

  @Test
  void aDeadlineNotYetPassedWhenTheSlotFreesStartsTheRequest() {
    h.submit("a");
    h.submit("b", 4, h.deadlineIn(Duration.ofSeconds(2)));
    h.clients.nextReserve();
    h.ticker.advance(Duration.ofSeconds(1));
    h.router.abort("a");
    assertEquals("b", h.clients.nextReserve().call().requestId());
  }

  @Test
  void aCancelledQueuedRequestLeavesTheQueueAndNeverStarts() {
    h.submit("a");
    Submitted b = h.submit("b");
    h.clients.nextReserve();

    b.handle().cancel("client cancelled");
    assertEquals(RequestState.FINISHED, b.handle().state());
    assertEquals(0, h.router.queued());
    b.sink().assertNoOutcome(); // the client is gone: nothing is sent
    assertEquals(List.of(RouterMetrics.REJECT_CANCELLED), h.metrics.rejected());

    h.router.abort("a");
    assertEquals(0, h.router.running());
    assertEquals(0, h.router.inFlight());
    h.clients.assertNoMoreCalls();
  }

  @Test
  void anIdInFlightCannotBeSubmittedTwice() {
    h.submit("a");
    ServingException e = assertThrows(ServingException.class, () -> h.submit("a"));
    assertEquals(ServingException.Kind.ALREADY_EXISTS, e.kind(), e.getMessage());
    assertEquals("request id a is already in flight; use a unique request_id", e.getMessage());
    assertEquals(List.of("already_exists"), h.metrics.rejected());
  }
}
