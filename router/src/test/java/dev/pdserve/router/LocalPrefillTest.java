package dev.pdserve.router;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.config.NodeRole;
import dev.pdserve.router.InMemoryNodeClients.OpenStream;
import dev.pdserve.router.NodeClients.Reserved;
import dev.pdserve.router.RouterHarness.Submitted;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Conditional disaggregation: short prompts are prefilled by the decode node itself. */
class LocalPrefillTest {
  private static final int THRESHOLD = 8;

  private RouterHarness h;

  @BeforeEach
  void setUp() {
    h =
        new RouterHarness(
            new RouterOptions(4, 4, 1),
            new PrefixRouting(
                null,
                PrefixRouting.DEFAULT_CACHED_TOKEN_WEIGHT,
                PrefixRouting.DEFAULT_TRACKED_BLOCKS_PER_NODE,
                THRESHOLD));
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.add("d1", NodeRole.DECODE);
    h.clients.supportLocalPrefill(true);
  }

  @AfterEach
  void tearDown() {
    h.close();
  }

  @Test
  void aPromptAtTheThresholdIsPrefilledByTheDecodeNode() {
    Submitted r = h.submit("r", THRESHOLD, 0);
    Reserved granted = h.clients.nextReserve().grant("t-1", 0);
    OpenStream s = h.clients.nextStream();
    assertTrue(s.decode().localPrefill(), "the decode call carries no first token");
    assertNull(s.decode().first());
    assertEquals(granted, s.decode().reservation());
    assertEquals(THRESHOLD, s.decode().prompt().length);
    assertEquals(RequestState.DECODING, r.handle().state());
    assertEquals(1, h.router.localPrefills());
    s.delta(3);
    s.complete("stop", 1);
    assertEquals("stop", r.sink().awaitCompletion());
    h.clients.assertNoMoreCalls(); // no prefill node was asked
    assertEquals(List.of(3), r.sink().tokens());
  }

  @Test
  void aPromptAboveTheThresholdGoesToAPrefillNode() {
    h.submit("r", THRESHOLD + 1, 0);
    h.clients.nextReserve().grant("t-1", 0);
    assertEquals("p1", h.clients.nextPrefill().node().id());
    assertEquals(0, h.router.localPrefills());
  }

  @Test
  void clientsWithoutLocalPrefillAlwaysUseAPrefillNode() {
    h.clients.supportLocalPrefill(false);
    h.submit("r", 2, 0);
    h.clients.nextReserve().grant("t-1", 0);
    h.clients.nextPrefill().firstToken(4);
    assertFalse(h.clients.nextStream().decode().localPrefill());
    assertEquals(0, h.router.localPrefills());
  }
}
