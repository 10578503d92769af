package dev.pdserve.router;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.router.InMemoryNodeClients.OpenStream;
import dev.pdserve.router.RouterHarness.Submitted;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Overload refused early: the router forecasts a new request's wait from the prompt tokens ahead of
 * it and the prefill throughput it measured (first tokens on its clock), and refuses one that would
 * wait past the bound with RESOURCE_EXHAUSTED at once, saying the forecast and when to retry.
 */
class OverloadGuardTest {
  private static final Duration BOUND = Duration.ofSeconds(2);
  private static final double ASSUMED_PER_NODE = 100; // prompt tokens/s

  private RouterHarness h;

  @BeforeEach
  void setUp() {
    h = harness(new OverloadLimits(BOUND, ASSUMED_PER_NODE));
    h.cluster.add("p1", NodeRole.PREFILL);
    h.cluster.add("d1", NodeRole.DECODE);
  }

  @AfterEach
  void tearDown() {
    h.close();
  }

  private static RouterHarness harness(OverloadLimits limits) {
    return new RouterHarness(
        new RouterOptions(128, 128, 1), PrefixRouting.disabled(), FailureHandling.DEFAULTS, limits);
  }

  @Test
  void aRequestForecastToWaitPastTheBoundIsRefusedAtOnce() {
    h.submit("a", 100, 0); // nothing ahead
    h.submit("b", 100, 0); // 100 tokens ahead: 1 s
    h.submit("c", 100, 0); // 200 ahead: 2 s, at the bound
    assertEquals(Duration.ofSeconds(3), h.router.predictedQueueDelay());

    ServingException e = assertThrows(ServingException.class, () -> h.submit("d", 100, 0));
    assertEquals(ServingException.Kind.RESOURCE_EXHAUSTED, e.kind(), e.getMessage());
    assertEquals(
        "router overloaded: a new request would wait about 3.0 s for the 300 prompt tokens ahead"
            + " of it (at 100 prompt tokens/s, assumed until measured), more than the 2.0 s"
            + " allowed (pdserve.router.max-queue-delay); retry after 1000 ms",
        e.getMessage());
    assertEquals(List.of(RouterMetrics.REJECT_OVERLOADED), h.metrics.rejected());
    assertEquals(3, h.router.inFlight(), "nothing is kept for the refused request");
  }

  @Test
  void theAssumedThroughputScalesWithTheActivePrefillNodes() {
    h.cluster.add("p2", NodeRole.PREFILL);
    assertEquals(200, h.router.forecastTokensPerSecond(), 1e-6);
    h.submit("a", 100, 0);
    assertEquals(Duration.ofMillis(500), h.router.predictedQueueDelay());
  }

  @Test
  void aRequestsOwnPromptIsNotItsQueueingDelay() {
    // 1000 tokens take 10 s at the assumed rate, but nothing is ahead of it: it is served
    Submitted big = h.submit("big", 1000, 0);
    assertEquals(RequestState.RESERVING, big.handle().state());
    assertThrows(ServingException.class, () -> h.submit("next", 1, 0));
  }

  @Test
  void theForecastFollowsTheMeasuredThroughput() {
    List<Submitted> admitted = new ArrayList<>();
    admitted.add(h.submit("a", 100, 0));
    admitted.add(h.submit("b", 100, 0));
    admitted.add(h.submit("c", 100, 0));
    List<OpenStream> streams = decodeAll(3);

    h.ticker.advance(Duration.ofSeconds(1));
    streams.get(0).delta(1); // a's first token: a sample needs one before it
    assertEquals(100, h.router.forecastTokensPerSecond(), 1e-9, "still assumed");
    h.ticker.advance(Duration.ofMillis(250));
    streams.get(1).delta(1); // b waited behind a: 100 tokens in 250 ms
    assertEquals(400, h.router.forecastTokensPerSecond(), 1e-9, "measured");
    assertEquals(Duration.ofMillis(250), h.router.predictedQueueDelay(), "c's 100 tokens ahead");
    h.ticker.advance(Duration.ofMillis(1250));
    streams.get(2).delta(1); // c: 100 tokens in 1250 ms; b's sample weighs less, 1.25 s older
    double keep = Math.exp(-1.25e9 / OverloadGuard.RATE_TIME_CONSTANT_NANOS);
    double rate = (100 * keep + 100) / (0.250 * keep + 1.250);
    assertEquals(rate, h.router.forecastTokensPerSecond(), 1e-6);
    assertEquals(Duration.ZERO, h.router.predictedQueueDelay(), "every first token came");
    streams.get(2).delta(2); // later tokens are not samples
    assertEquals(rate, h.router.forecastTokensPerSecond(), 1e-6);

    // an arrival to an idle router measures latency, not throughput: no sample
    h.ticker.advance(Duration.ofSeconds(10));
    h.submit("d", 100, 0);
    h.clients.nextReserve().grant("t-d", 0);
    h.clients.nextPrefill().firstToken(1);
    h.ticker.advance(Duration.ofSeconds(3));
    h.clients.nextStream().delta(1);
    assertEquals(rate, h.router.forecastTokensPerSecond(), 1e-6);
  }

  @Test
  void aBurstOfFirstTokensFromOneBatchIsNotARateTheClusterNeverHad() {
    List<Submitted> admitted = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      admitted.add(h.submit("r" + i, 100, 0)); // 0, 100, 200 tokens ahead: within 2 s
    }
    List<OpenStream> streams = decodeAll(3);
    h.ticker.advance(Duration.ofSeconds(1));
    streams.get(0).delta(1); // the first first token: no sample yet
    h.ticker.advance(Duration.ofSeconds(1));
    streams.get(1).delta(1); // one batch's first tokens, all at once: one gap of 1 s ...
    streams.get(2).delta(1); // ... and one of 0 s
    // 200 tokens in the 1 s the router was busy, however many samples the gap was split into
    assertEquals(200, h.router.forecastTokensPerSecond(), 1e-9);
  }

  @Test
  void firstTokensLaterThanForecastTightenAdmissionUntilTheyAgeOut() {
    Submitted a = h.submit("a", 100, 0); // nothing ahead; forecast 1 s for its own 100 tokens
    h.clients.nextReserve().grant("t-a", 0);
    h.clients.nextPrefill().firstToken(1);
    OpenStream sa = h.clients.nextStream();
    h.ticker.advance(Duration.ofSeconds(3));
    sa.delta(1); // its first token came 2 s later than forecast
    assertEquals(Duration.ofSeconds(2), h.router.forecastLag());
    assertEquals(RequestState.DECODING, a.handle().state());

    h.submit("b", 100, 0); // nothing ahead: admitted whatever the lag
    // 100 tokens ahead = 1 s; with the 2 s lag, 3 s: past the 2 s bound
    ServingException e = assertThrows(ServingException.class, () -> h.submit("c", 100, 0));
    assertEquals(
        "router overloaded: a new request would wait about 3.0 s for the 100 prompt tokens ahead"
            + " of it (at 100 prompt tokens/s, assumed until measured and 2.0 s that recent first"
            + " tokens came later than forecast), more than the 2.0 s allowed"
            + " (pdserve.router.max-queue-delay); retry after 1000 ms",
        e.getMessage());

    h.ticker.advance(Duration.ofNanos(OverloadGuard.LAG_WINDOW_NANOS + 1));
    assertEquals(Duration.ZERO, h.router.forecastLag(), "the late first token aged out");
    h.submit("c", 100, 0); // 1 s ahead, no lag: admitted
  }

  @Test
  void requestsStillWaitingPastTheirForecastCountBeforeTheirFirstTokenComes() {
    Submitted a = h.submit("a", 10, 0); // forecasts at 100 tokens/s: 0.1 s (its own prompt)
    Submitted b = h.submit("b", 10, 0); // 0.2 s
    h.submit("c", 10, 0); // 0.3 s
    h.submit("d", 10, 0); // 0.4 s
    h.ticker.advance(Duration.ofMillis(1500)); // none has a first token: 1.4, 1.3, 1.2, 1.1 s late
    assertEquals(Duration.ofMillis(1300), h.router.forecastLag(), "the second latest decides");
    a.handle().cancel("client cancelled");
    b.handle().cancel("client cancelled");
    assertEquals(Duration.ofMillis(1100), h.router.forecastLag(), "of c and d: d");
    // 20 tokens ahead (0.2 s) + 1.1 s lag is within 2 s; after another second it is not
    h.submit("e", 10, 0);
    h.ticker.advance(Duration.ofSeconds(1));
    ServingException e = assertThrows(ServingException.class, () -> h.submit("f", 10, 0));
    assertEquals(ServingException.Kind.RESOURCE_EXHAUSTED, e.kind(), e.getMessage());
  }

  @Test
  void oneStuckRequestAloneDoesNotCloseAdmission() {
    h.submit("stuck", 10, 0);
    h.ticker.advance(Duration.ofSeconds(30)); // 30 s past its forecast, no first token
    assertEquals(Duration.ZERO, h.router.forecastLag());
    h.submit("next", 10, 0); // 10 tokens ahead: 0.1 s
  }

  @Test
  void theLagIsAHighQuantileOfRecentFirstTokensNotTheirMean() {
    // 100 requests, each alone: 98 on time, two 1.5 s late; the 99th of 100 is a late one
    for (int i = 0; i < 100; i++) {
      h.ticker.advance(Duration.ofMillis(1)); // after the last first token: an idle arrival
      h.submit("q" + i, 1, 0); // own forecast 10 ms at 100 tokens/s
      h.clients.nextReserve().grant("t-q" + i, 0);
      h.clients.nextPrefill().firstToken(1);
      OpenStream s = h.clients.nextStream();
      h.ticker.advance(Duration.ofMillis(i == 30 || i == 60 ? 1510 : 10));
      s.delta(1);
      s.complete("length", 1); // done: its admission slot is free for the next
    }
    assertEquals(Duration.ofMillis(1500), h.router.forecastLag());
    h.ticker.advance(Duration.ofMillis(1));
    h.submit("one-more", 1, 0);
    h.clients.nextReserve().grant("t-one-more", 0);
    h.clients.nextPrefill().firstToken(1);
    h.ticker.advance(Duration.ofMillis(10));
    h.clients.nextStream().delta(1); // 101 samples, 2 late: still the 99th percentile's
    assertEquals(Duration.ofMillis(1500), h.router.forecastLag());
  }

  @Test
  void theMeasuredThroughputDecidesLaterRefusals() {
    h.submit("a", 100, 0);
    h.submit("b", 100, 0);
    List<OpenStream> streams = decodeAll(2);
    h.ticker.advance(Duration.ofMillis(100));
    streams.get(0).delta(1);
    h.ticker.advance(Duration.ofMillis(100));
    streams.get(1).delta(1); // 1000 tokens/s measured: 10 times the assumed rate
    for (int i = 0; i <= 20; i++) {
      h.submit("x" + i, 100, 0); // the last has 2000 tokens ahead: 2 s, at the bound
    }
    ServingException e = assertThrows(ServingException.class, () -> h.submit("y", 100, 0));
    assertEquals(
        "router overloaded: a new request would wait about 2.1 s for the 2100 prompt tokens ahead"
            + " of it (at 1000 prompt tokens/s, as measured), more than the 2.0 s allowed"
            + " (pdserve.router.max-queue-delay); retry after 100 ms",
        e.getMessage());
  }

  @Test
  void aRefusedRequestIsAdmittedOnceTheBacklogDrains() {
    h.submit("a", 100, 0);
    h.submit("b", 100, 0);
    h.submit("c", 100, 0);
    List<OpenStream> streams = decodeAll(3);
    assertThrows(ServingException.class, () -> h.submit("d", 100, 0));
    streams.get(0).delta(1); // a no longer waits for its first token
    h.submit("d", 100, 0);
  }

  @Test
  void requestsThatEndWithoutAFirstTokenLeaveTheBacklog() {
    Submitted a = h.submit("a", 100, 0);
    h.submit("b", 100, 0);
    h.submit("c", 100, 0);
    a.handle().cancel("client cancelled");
    assertEquals(Duration.ofSeconds(2), h.router.predictedQueueDelay());
    h.submit("d", 100, 0);
  }

  @Test
  void prefillQueuesOfOtherRoutersCountButOurOwnPrefillsOnce() {
    h.submit("a", 100, 0);
    h.clients.nextReserve().grant("t-a", 0);
    h.clients.nextPrefill(); // a's 100 tokens are on p1 now
    h.cluster.setLoad("p1", new Load(150, 1, 0, 0, 0)); // p1 reports them and 50 of others'
    assertEquals(Duration.ofMillis(1500), h.router.predictedQueueDelay(), "100 ours + 50 others'");
  }

  @Test
  void aBurstTheForecastWouldAdmitIsHeldToTheAdmissionWindow() {
    for (int i = 0; i < 64; i++) {
      h.submit("r" + i, 1, 0); // 1-token prompts: the forecast sees 0.63 s ahead at most
    }
    assertEquals(Duration.ofMillis(640), h.router.predictedQueueDelay());
    assertEquals(64, h.router.admissionWindow());
    ServingException e = assertThrows(ServingException.class, () -> h.submit("over", 1, 0));
    assertEquals(ServingException.Kind.RESOURCE_EXHAUSTED, e.kind(), e.getMessage());
    assertEquals(
        "router overloaded: 64 requests are waiting for their first token, as many as this router"
            + " lets wait while recent first tokens come within 1.2 s (60 % of the 2.0 s allowed,"
            + " pdserve.router.max-queue-delay); retry after 18 ms",
        e.getMessage());
    assertEquals(64, h.router.inFlight(), "nothing is kept for the refused request");

    List<OpenStream> streams = decodeAll(64);
    h.ticker.advance(Duration.ofMillis(100));
    streams.get(0).delta(1); // on time, with the window in use: slow start widens it, 64.5
    streams.get(1).delta(1); // 65
    assertEquals(65, h.router.admissionWindow());
    h.submit("over", 1, 0);
    h.submit("more", 1, 0);
    h.submit("again", 1, 0);
    assertThrows(ServingException.class, () -> h.submit("too-many", 1, 0));
  }

  @Test
  void waitingPastTheTargetNarrowsTheWindow() {
    for (int i = 0; i < 50; i++) {
      h.submit("r" + i, 1, 0);
    }
    h.ticker.advance(Duration.ofMillis(1300)); // none has its first token: past the 1.2 s target
    // the forecast would admit (0.5 s ahead + 1.29 s late < 2 s); the narrowed window does not
    ServingException e = assertThrows(ServingException.class, () -> h.submit("late", 1, 0));
    assertEquals(44, h.router.admissionWindow(), "64 x 0.7");
    assertEquals(
        "router overloaded: 50 requests are waiting for their first token, as many as this router"
            + " lets wait while recent first tokens come near or past 1.2 s (60 % of the 2.0 s"
            + " allowed, pdserve.router.max-queue-delay); retry after 24 ms",
        e.getMessage());
  }

  @Test
  void aZeroBoundNeverRefuses() {
    try (RouterHarness off = harness(OverloadLimits.off())) {
      off.cluster.add("p1", NodeRole.PREFILL);
      off.cluster.add("d1", NodeRole.DECODE);
      for (int i = 0; i < 40; i++) {
        off.submit("r" + i, 1000, 0);
      }
      assertEquals(40, off.router.inFlight());
    }
  }

  /** Runs the next {@code n} reservations and prefills of submitted requests to their streams. */
  private List<OpenStream> decodeAll(int n) {
    List<OpenStream> streams = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      h.clients.nextReserve().grant("t-" + i, 0);
      h.clients.nextPrefill().firstToken(1);
      streams.add(h.clients.nextStream());
    }
    return streams;
  }
}
