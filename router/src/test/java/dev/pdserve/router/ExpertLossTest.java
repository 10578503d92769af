package dev.pdserve.router;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.serving.ExpertsUnavailableException;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.router.InMemoryNodeClients.OpenStream;
import dev.pdserve.router.InMemoryNodeClients.PrefillAttempt;
import dev.pdserve.router.RouterHarness.Submitted;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Routed experts without a live shard are not the worker's fault: a request whose decode stream or
 * prefill fails so ends at once with that UNAVAILABLE, instead of moving to another worker that
 * needs the same experts.
 */
class ExpertLossTest {
  private static final String LOST =
      "experts 3, 7 of layer 2 have no live shard (shard e1 left the cluster); requests that need"
          + " them fail until a shard hosting them is back";

  private RouterHarness h;

  @BeforeEach
  void setUp() {
    h =
        new RouterHarness(
            new RouterOptions(4, 4, 2),
            PrefixRouting.disabled(),
            FailureHandling.DEFAULTS,
            OverloadLimits.off());
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.add("p2", NodeRole.PREFILL);
    h.cluster.add("d1", NodeRole.DECODE);
    h.cluster.add("d2", NodeRole.DECODE);
  }

  @AfterEach
  void tearDown() {
    h.close();
  }

  @Test
  void aDecodeStreamThatLostItsExpertsFailsWithoutMovingToAnotherDecodeNode() {
    h.cluster.setState("d2", NodeState.DRAINING);
    Submitted r = h.submit("r", 4, 0, 16);
    h.clients.nextReserve().grant("t-1", 0);
    h.clients.nextPrefill().firstToken(10);
    h.cluster.setState("d2", NodeState.ACTIVE);
    OpenStream stream = h.clients.nextStream();
    stream.delta(11);
    stream.fail(new ExpertsUnavailableException("decode on decode node d1: " + LOST, null));

    ServingException e = r.sink().awaitError();
    assertInstanceOf(ExpertsUnavailableException.class, e);
    assertEquals(ServingException.Kind.UNAVAILABLE, e.kind());
    assertEquals("decode on decode node d1: " + LOST, e.getMessage());
    assertFalse(e.getMessage().contains("Exception"), e.getMessage());
    h.clients.assertNoMoreCalls();
    assertEquals(List.of(), h.metrics.migrations(), "not moved to d2");
    assertEquals(List.of(RouterMetrics.REJECT_EXPERTS_UNAVAILABLE), h.metrics.rejected());
    r.sink().assertOneOutcome();
  }

  @Test
  void aPrefillThatLostItsExpertsIsNotComputedAgainOnAnotherPrefillNode() {
    Submitted r = h.submit("r", 4, 0, 16);
    h.clients.nextReserve().grant("t-1", 0);
    PrefillAttempt prefill = h.clients.nextPrefill();
    prefill.fail(new ExpertsUnavailableException("prefill on prefill node p1: " + LOST, null));

    ServingException e = r.sink().awaitError();
    assertInstanceOf(ExpertsUnavailableException.class, e);
    assertTrue(e.getMessage().endsWith(LOST), e.getMessage());
    h.clients.assertNoMoreCalls();
    assertEquals(List.of(), h.metrics.migrations());
    assertEquals(List.of(RouterMetrics.REJECT_EXPERTS_UNAVAILABLE), h.metrics.rejected());
    r.sink().assertOneOutcome();
  }

  @Test
  void aNodeLossStillMigratesAndItsMessageNamesNoClass() {
    h.cluster.setState("d2", NodeState.DRAINING);
    Submitted r = h.submit("r", 4, 0, 16);
    h.clients.nextReserve().grant("t-1", 0);
    h.clients.nextPrefill().firstToken(10);
    h.cluster.setState("d2", NodeState.ACTIVE);
    h.clients.nextStream().fail(ServingException.unavailable("decode on decode node d1: gone"));
    assertEquals(List.of(RouterMetrics.MIGRATION_DECODE_NODE_LOST), h.metrics.migrations());
    assertEquals(RequestState.RESERVING, r.handle().state());
  }
}
