package dev.pdserve.router;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.KvFailurePolicy;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.router.InMemoryNodeClients.OpenStream;
import dev.pdserve.router.InMemoryNodeClients.PrefillAttempt;
import dev.pdserve.router.InMemoryNodeClients.Release;
import dev.pdserve.router.NodeClients.Reserved;
import dev.pdserve.router.RouterHarness.Submitted;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A prefill node failing during the prefill or its KV push: under {@code recompute} the KV is
 * computed again into a fresh reservation (the half-pushed one is released, which cancels its
 * transfer); under {@code fail} the request ends with UNAVAILABLE.
 */
class PrefillFailureTest {
  private static RouterHarness harness(KvFailurePolicy policy) {
    return new RouterHarness(
        new RouterOptions(4, 4, 2),
        PrefixRouting.disabled(),
        FailureHandling.DEFAULTS.withKvFailurePolicy(policy),
        OverloadLimits.off());
  }

  @Test
  void underTheFailPolicyALostPrefillEndsTheRequestWithUnavailable() {
    try (RouterHarness h = harness(KvFailurePolicy.FAIL)) {
      h.cluster.add("p1", NodeRole.PREFILL);
      h.cluster.add("p2", NodeRole.PREFILL);
      h.cluster.add("d1", NodeRole.DECODE);
      Submitted r = h.submit("r");
      h.clients.nextReserve().grant("t-1", 0);
      PrefillAttempt prefill = h.clients.nextPrefill();
      prefill.fail(ServingException.unavailable("prefill on prefill node x: Connection reset"));

      ServingException e = r.sink().awaitError();
      assertEquals(ServingException.Kind.UNAVAILABLE, e.kind(), e.getMessage());
      assertEquals(
          "prefill node "
              + prefill.node().id()
              + " failed during the prefill or KV push of request r (prefill on prefill node x:"
              + " Connection reset); pdserve.kv.failure-policy is fail, so its KV is not"
              + " computed again; nothing of it runs any more, so retrying the request is safe",
          e.getMessage());
      h.clients.assertNoMoreCalls();
      assertEquals(List.of(new Release("d1", "t-1")), h.clients.releases());
      assertEquals(List.of(), h.metrics.migrations());
      r.sink().assertOneOutcome();
    }
  }

  @Test
  void withOnePrefillNodeTheRetryGoesToItAgainIntoAFreshReservation() {
    // e.g. the decode node refused the push: the prefill node itself is fine
    try (RouterHarness h = harness(KvFailurePolicy.RECOMPUTE)) {
      h.cluster.add("p1", NodeRole.PREFILL);
      h.cluster.add("d1", NodeRole.DECODE);
      Submitted r = h.submit("r");
      h.clients.nextReserve().grant("t-1", 0);
      h.clients
          .nextPrefill()
          .fail(
              ServingException.unavailable(
                  "prefill on prefill node p1: decode node did not take the KV of r"));
      Reserved fresh = h.clients.nextReserve().grant("t-2", 0);
      PrefillAttempt again = h.clients.nextPrefill();
      assertEquals("p1", again.node().id(), "no other prefill node is ACTIVE");
      assertEquals(fresh, again.call().target());
      assertArrayEquals(new int[] {40, 41, 42, 43}, again.call().prompt());
      again.firstToken(5);
      OpenStream s = h.clients.nextStream();
      assertEquals(fresh, s.decode().reservation());
      s.delta(5);
      s.complete("stop", 1);
      assertEquals("stop", r.sink().awaitCompletion());
      assertEquals(List.of(new Release("d1", "t-1")), h.clients.releases());
      assertEquals(List.of(RouterMetrics.MIGRATION_PREFILL_NODE_LOST), h.metrics.migrations());
    }
  }

  @Test
  void aPrefillFailingWhileAContinuationRecomputesIsRetriedToo() {
    try (RouterHarness h = harness(KvFailurePolicy.RECOMPUTE)) {
      h.cluster.add("p1", NodeRole.PREFILL);
      h.cluster.add("p2", NodeRole.PREFILL);
      h.cluster.add("d1", NodeRole.DECODE);
      h.cluster.add("d2", NodeRole.DECODE);
      h.cluster.setState("d2", NodeState.DRAINING);
      Submitted r = h.submit("r");
      h.clients.nextReserve().grant("t-1", 0);
      h.clients.nextPrefill().firstToken(10);
      OpenStream first = h.clients.nextStream();
      first.delta(10, 11);
      h.cluster.setState("d2", NodeState.ACTIVE);
      first.fail(ServingException.unavailable("decode on decode node d1: Connection reset"));

      h.clients.nextReserve().grant("t-2", 0);
      PrefillAttempt lost = h.clients.nextPrefill();
      lost.fail(ServingException.unavailable("prefill on prefill node: Network closed"));
      assertEquals(List.of(new Release("d2", "t-2")), h.clients.releases());
      assertEquals("d2", h.clients.nextReserve().node().id(), "d1 was lost: not asked again");
    }
  }
}
