package dev.pdserve.router;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.router.InMemoryNodeClients.OpenStream;
import dev.pdserve.router.InMemoryNodeClients.ReserveAttempt;
import dev.pdserve.router.RouterHarness.Submitted;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Silence detection on the router's clock: a decode stream that sends nothing for the timeout (or
 * for a second once its node left the registry) is cancelled and its request continues on another
 * decode node; whatever the abandoned stream sends after waking is not taken.
 */
class StreamWatchdogTest {
  private static final Duration SILENCE = Duration.ofSeconds(10);

  private RouterHarness h;

  @BeforeEach
  void setUp() {
    h = harness(SILENCE);
  }

  @AfterEach
  void tearDown() {
    h.close();
  }

  private static RouterHarness harness(Duration silence) {
    RouterHarness h =
        new RouterHarness(
            new RouterOptions(4, 4, 2),
            PrefixRouting.disabled(),
            FailureHandling.DEFAULTS.withStreamSilenceTimeout(silence),
            OverloadLimits.off());
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.add("d1", NodeRole.DECODE);
    h.cluster.add("d2", NodeRole.DECODE);
    return h;
  }

  @Test
  void aSilentStreamIsGivenUpAtTheTimeoutAndItsLateTokensAreIgnored() {
    Submitted r = decodingOnD1(h, "r");
    OpenStream frozen = h.clients.nextStream();
    frozen.delta(10, 11);
    h.cluster.setState("d2", NodeState.ACTIVE);

    h.ticker.advance(SILENCE.minusMillis(1));
    h.router.watchdog().check();
    h.clients.assertNoMoreCalls();
    assertFalse(frozen.handle().cancelled(), "not silent long enough yet");
    assertEquals(RequestState.DECODING, r.handle().state());

    h.ticker.advance(Duration.ofMillis(1));
    h.router.watchdog().check();
    assertEquals(
        List.of("decode node d1 sent nothing for 10000 ms; the router gave its stream up"),
        frozen.handle().cancels(),
        "the silent stream is cancelled");
    assertEquals(List.of(RouterMetrics.MIGRATION_DECODE_NODE_SILENT), h.metrics.migrations());
    ReserveAttempt reserve = h.clients.nextReserve();
    assertEquals("d2", reserve.node().id());
    reserve.grant("t-2", 0);

    frozen.delta(12, 13); // the frozen node wakes up and carries on
    frozen.complete("length", 16);
    assertEquals(List.of(10, 11), r.sink().tokens(), "nothing the abandoned stream says is taken");
    r.sink().assertNoOutcome();

    h.clients.nextPrefill().firstToken(11);
    OpenStream resumed = h.clients.nextStream();
    assertArrayEquals(new int[] {10, 11}, resumed.resume().generated());
    resumed.delta(12);
    frozen.delta(99); // still ignored while the new stream runs
    resumed.delta(13);
    resumed.complete("stop", 4);
    assertEquals("stop", r.sink().awaitCompletion());
    assertEquals(List.of(10, 11, 12, 13), r.sink().tokens());
    r.sink().assertOneOutcome();
  }

  @Test
  void aSilentStreamPastTheMigrationLimitFailsSayingItWentSilent() {
    RouterHarness never =
        new RouterHarness(
            new RouterOptions(4, 4, 2),
            PrefixRouting.disabled(),
            FailureHandling.DEFAULTS.withStreamSilenceTimeout(SILENCE).withMigrationLimit(0),
            OverloadLimits.off());
    try {
      never.cluster.add("p1", NodeRole.PREFILL);
      never.cluster.add("d1", NodeRole.DECODE);
      never.cluster.add("d2", NodeRole.DECODE);
      Submitted r = decodingOnD1(never, "r");
      OpenStream frozen = never.clients.nextStream();
      frozen.delta(10);
      never.ticker.advance(SILENCE);
      never.router.watchdog().check();
      ServingException e = r.sink().awaitError();
      assertEquals(ServingException.Kind.UNAVAILABLE, e.kind(), e.getMessage());
      assertEquals(
          "request r lost its decode node (d1 (sent nothing for 10000 ms)) after 1 of its tokens"
              + " were delivered, and its moves to another decode node are spent"
              + " (pdserve.router.migration-limit = 0); nothing of it runs any more, so retrying"
              + " the request is safe",
          e.getMessage());
      assertEquals(1, frozen.handle().cancels().size(), "the silent stream is cancelled");
      never.clients.assertNoMoreCalls();
    } finally {
      never.close();
    }
  }

  @Test
  void everyMessageRestartsTheSilenceClock() {
    decodingOnD1(h, "r");
    OpenStream s = h.clients.nextStream();
    for (int i = 0; i < 5; i++) {
      h.ticker.advance(SILENCE.minusMillis(1));
      s.delta(10 + i);
      h.router.watchdog().check();
    }
    h.clients.assertNoMoreCalls();
    assertFalse(s.handle().cancelled());
  }

  @Test
  void aStreamIsSilentFromItsOpeningEvenBeforeItsFirstToken() {
    decodingOnD1(h, "r");
    OpenStream s = h.clients.nextStream();
    h.cluster.setState("d2", NodeState.ACTIVE);
    h.ticker.advance(SILENCE);
    h.router.watchdog().check();
    assertEquals(1, s.handle().cancels().size());
    h.clients.nextReserve();
  }

  @Test
  void aStreamWhoseNodeLeftTheRegistryIsGivenUpAfterASecondOfSilence() {
    decodingOnD1(h, "r");
    OpenStream s = h.clients.nextStream();
    s.delta(10);
    h.cluster.setState("d2", NodeState.ACTIVE);
    h.cluster.remove("d1"); // the cluster's failure detector dropped it

    h.ticker.advance(StreamWatchdog.GONE_NODE_SILENCE.minusMillis(1));
    h.router.watchdog().check();
    assertFalse(s.handle().cancelled());

    h.ticker.advance(Duration.ofMillis(1));
    h.router.watchdog().check();
    assertEquals(
        List.of(
            "decode node d1 left the cluster and sent nothing for 1000 ms; the router gave its"
                + " stream up"),
        s.handle().cancels());
    assertEquals("d2", h.clients.nextReserve().node().id());
  }

  @Test
  void aStreamStillTalkingIsKeptEvenIfItsNodeLeftTheRegistry() {
    decodingOnD1(h, "r");
    OpenStream s = h.clients.nextStream();
    h.cluster.remove("d1");
    for (int i = 0; i < 5; i++) {
      h.ticker.advance(Duration.ofMillis(900));
      s.delta(10 + i);
      h.router.watchdog().check();
    }
    assertFalse(s.handle().cancelled(), "tokens still flow: the node is alive");
  }

  @Test
  void aZeroTimeoutNeverGivesAStreamUp() {
    RouterHarness off = harness(Duration.ZERO);
    try {
      decodingOnD1(off, "r");
      OpenStream s = off.clients.nextStream();
      off.cluster.remove("d1");
      off.ticker.advance(Duration.ofHours(1));
      off.router.watchdog().check();
      assertFalse(s.handle().cancelled());
      off.clients.assertNoMoreCalls();
    } finally {
      off.close();
    }
  }

  @Test
  void requestsNotDecodingAreLeftAlone() {
    Submitted r = h.submit("r");
    h.clients.nextReserve().grant("t-1", 0);
    h.ticker.advance(Duration.ofMinutes(5));
    h.router.watchdog().check();
    assertEquals(RequestState.PREFILLING, r.handle().state());
    h.clients.nextPrefill();
    h.clients.assertNoMoreCalls();
  }

  @Test
  void aFinishedStreamIsNotWatched() {
    Submitted r = decodingOnD1(h, "r");
    OpenStream s = h.clients.nextStream();
    s.delta(10);
    s.complete("stop", 1);
    h.ticker.advance(Duration.ofMinutes(5));
    h.router.watchdog().check();
    assertFalse(s.handle().cancelled());
    assertEquals("stop", r.sink().awaitCompletion());
    h.clients.assertNoMoreCalls();
  }

  /** Submits {@code id} and runs it to DECODING on d1 (d2 drains meanwhile, so it is not used). */
  private static Submitted decodingOnD1(RouterHarness h, String id) {
    h.cluster.setState("d2", NodeState.DRAINING);
    Submitted r = h.submit(id);
    ReserveAttempt reserve = h.clients.nextReserve();
    assertEquals("d1", reserve.node().id());
    reserve.grant("t-1", 0);
    h.clients.nextPrefill().firstToken(10);
    assertEquals(RequestState.DECODING, r.handle().state());
    return r;
  }
}
