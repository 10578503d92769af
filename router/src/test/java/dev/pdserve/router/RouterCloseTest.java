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
import dev.pdserve.router.RouterHarness.Submitted;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Draining and closing: what requests in flight get, and new ones. */
class RouterCloseTest {
  private RouterHarness h;

  @BeforeEach
  void setUp() {
    h = RouterHarness.withOptions(3, 2, 1);
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.add("d1", NodeRole.DECODE);
  }

  @AfterEach
  void tearDown() {
    h.close();
  }

  @Test
  void closeFailsEveryRequestInFlightWithUnavailableAndStopsTheirWork() {
    Submitted reserving = h.submit("reserving");
    ReserveAttempt pendingReserve = h.clients.nextReserve();
    Submitted prefilling = h.submit("prefilling");
    h.clients.nextReserve().grant("t-p", 0);
    PrefillAttempt prefill = h.clients.nextPrefill();
    Submitted decoding = h.submit("decoding");
    h.clients.nextReserve().grant("t-d", 0);
    h.clients.nextPrefill().firstToken(1);
    OpenStream stream = h.clients.nextStream();
    Submitted queued = h.submit("queued");

    h.router.close();

    for (Submitted r : List.of(reserving, prefilling, decoding, queued)) {
      ServingException e = r.sink().awaitError();
      assertEquals(ServingException.Kind.UNAVAILABLE, e.kind(), r.id() + ": " + e.getMessage());
      assertEquals("router is shutting down", e.getMessage(), r.id());
      r.sink().assertOneOutcome();
      assertEquals(RequestState.FINISHED, r.handle().state(), r.id());
    }
    assertEquals(List.of("router is shutting down"), prefill.handle().cancels());
    assertEquals(List.of("router is shutting down"), stream.handle().cancels());
    pendingReserve.grant("t-late", 0);
    assertEquals(
        List.of(new Release("d1", "t-p"), new Release("d1", "t-late")), h.clients.releases());
    assertEquals(0, h.router.inFlight());
    assertEquals(
        List.of(RouterMetrics.REJECT_SHUTTING_DOWN),
        h.metrics.rejected().stream().distinct().toList());
    h.clients.assertNoMoreCalls(); // the queued request never started

    ServingException refused = assertThrows(ServingException.class, () -> h.submit("late"));
    assertEquals("router is shutting down", refused.getMessage());
  }

  @Test
  void drainingRefusesNewRequestsAndLetsTakenOnesFinish() {
    Submitted r = h.submit("r");
    h.router.stopAccepting("router x is shutting down; retry on another replica");
    assertEquals(
        Optional.of("router x is shutting down; retry on another replica"), h.router.refusal());
    ServingException e = assertThrows(ServingException.class, () -> h.submit("new"));
    assertEquals(ServingException.Kind.UNAVAILABLE, e.kind());
    assertEquals("router x is shutting down; retry on another replica", e.getMessage());

    assertFalse(h.router.awaitIdle(Duration.ZERO), "one request is still running");
    h.clients.nextReserve().grant("t", 0);
    h.clients.nextPrefill().firstToken(1);
    h.clients.nextStream().complete("stop", 1);
    assertEquals("stop", r.sink().awaitCompletion());
    assertTrue(h.router.awaitIdle(Duration.ZERO));
  }

  @Test
  void awaitIdleGivesUpWhenTheRoutersClockPassesTheTimeout() throws InterruptedException {
    h.submit("r");
    AtomicBoolean waiting = new AtomicBoolean(true);
    Thread clock =
        new Thread(
            () -> {
              while (waiting.get()) {
                h.ticker.advance(Duration.ofMillis(100));
                Thread.yield();
              }
            },
            "test-clock");
    clock.start();
    try {
      assertFalse(h.router.awaitIdle(Duration.ofSeconds(30)), "the request never ended");
    } finally {
      waiting.set(false);
      clock.join();
    }
    assertEquals(1, h.router.inFlight());
  }
}
