package dev.pdserve.decode;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.engine.Emission;
import dev.pdserve.model.engine.FailingExperts;
import dev.pdserve.model.sampling.SamplingParams;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The decode engine with real ORT sessions of the tiny model and a real KV pool, its KV arriving
 * through an in-memory transfer and its time driven by a FakeTicker: streams equal the reference
 * engine's greedy tokens, and every reservation ends freed — finished, cancelled, timed out, or at
 * the end of its lease or time to live.
 */
class DecodeEngineTest {
  static final Duration TRANSFER_TIMEOUT = Duration.ofSeconds(5);
  static final Duration TTL = Duration.ofSeconds(30);
  static final Duration LEASE = Duration.ofSeconds(10);

  static TinyModel model;

  RootAllocator allocator;
  GatedExperts experts;
  TestDecodeNode node;
  DecodeEngine engine;
  KvBlockPool prefillPool;

  @BeforeAll
  static void loadModel() {
    model = new TinyModel();
  }

  @AfterAll
  static void closeModel() {
    model.close();
  }

  @BeforeEach
  void start() {
    allocator = new RootAllocator();
    experts = new GatedExperts(model.reference.experts());
    node =
        new TestDecodeNode(
            "decode-a",
            allocator,
            model,
            experts,
            new DecodeOptions(8, TRANSFER_TIMEOUT, TTL, LEASE));
    engine = node.engine;
    KvLayout layout = KvLayout.of(model.reference.config());
    prefillPool = new KvBlockPool(allocator, "prefill-kv", layout, 64L * layout.blockBytes());
  }

  @AfterEach
  void stop() {
    experts.open();
    node.close(); // checks every block of its pool is free
    assertEquals(prefillPool.totalBlocks(), prefillPool.freeBlocks(), "prefill KV must be free");
    prefillPool.close();
    allocator.close(); // fails if any Arrow memory leaked
  }

  @Test
  void releaseFreesAnUnusedReservation() {
    Reservation r = engine.reserve("r1", 40, 20);
    assertEquals(node.pool.layout().blocksFor(60), r.blocks().length);
    assertEquals(node.pool.totalBlocks() - r.blocks().length, node.pool.freeBlocks());
    assertEquals(r.blocks().length, engine.reservedBlocks());
    assertTrue(engine.release(r.transferId()));
    assertFalse(engine.release(r.transferId()), "a second release finds nothing");
    assertEquals(node.pool.totalBlocks(), node.pool.freeBlocks());
    assertEquals(0, engine.reservedBlocks());
  }

  @Test
  void reservationsBeyondThePoolAreRefusedWithResourceExhausted() {
    ServingException never =
        assertThrows(ServingException.class, () -> engine.reserve("huge", 1000, 100));
    assertEquals(ServingException.Kind.RESOURCE_EXHAUSTED, never.kind());
    assertTrue(never.getMessage().contains("pool holds only 64"), never.getMessage());
    Reservation a = engine.reserve("a", 400, 100); // 32 blocks
    Reservation b = engine.reserve("b", 400, 100); // 32 more: pool now full
    ServingException full = assertThrows(ServingException.class, () -> engine.reserve("c", 10, 5));
    assertEquals(ServingException.Kind.RESOURCE_EXHAUSTED, full.kind());
    assertTrue(full.getMessage().contains("retry shortly"), full.getMessage());
    engine.release(a.transferId());
    engine.release(b.transferId());
  }

  @Test
  void joiningAnUnknownReservationIsNotFound() {
    ServingException e =
        assertThrows(
            ServingException.class,
            () ->
                engine.join(
                    JoinRequest.prefilled(
                        "x", "no-such-transfer", new int[] {1, 2}, 3, 0, greedy(4), 1, 0),
                    new RecordingSink()));
    assertEquals(ServingException.Kind.NOT_FOUND, e.kind());
  }

  @Test
  void aJoinAfterItsKvArrivedStreamsTheReferenceEnginesTokens() {
    int[] prompt = model.prompt("KV computed elsewhere, then pushed");
    int[] expected = model.referenceTokens(prompt, 24);
    RecordingSink sink = node.joinPrefilledElsewhere(model, prefillPool, "pushed", prompt, 24);
    Emission last = sink.awaitFinish();
    assertEquals("length", last.finish().wireName());
    assertArrayEquals(
        expected,
        sink.tokenIds(),
        "decoding from pushed KV must give the reference engine's greedy tokens");
    assertEquals(1, node.transfer.completed(), "the KV arrived through the transfer");
    assertEquals(0, engine.localPrefills());
  }

  @Test
  void aJoinBeforeItsKvArrivesStartsDecodingWhenItDoes() {
    int[] prompt = model.prompt("joined first, KV second");
    int[] expected = model.referenceTokens(prompt, 16);
    Reservation r = engine.reserve("early", prompt.length, 16);
    // The first token is the reference's own first token: what the prefill node will sample.
    RecordingSink sink = new RecordingSink();
    engine.join(
        JoinRequest.prefilled("early", r.transferId(), prompt, expected[0], 0, greedy(16), 1, 0),
        sink);
    assertEquals(1, engine.stats().waitingForKv(), "the joined request waits for its KV");
    assertEquals(0, sink.tokenCount(), "no token before the KV is here");
    model.prefillAndPush(
        prompt, greedy(16), prefillPool, node.transfer, node.endpoint(), r.transferId());
    sink.awaitFinish();
    assertArrayEquals(expected, sink.tokenIds(), "the stream after the KV arrived");
  }

  @Test
  void aRequestPrefilledHereStreamsTheReferenceEnginesTokens() {
    int[] prompt = model.prompt("a prompt the decode node prefills itself");
    int[] expected = model.referenceTokens(prompt, 20);
    Reservation r = engine.reserve("local", prompt.length, 20);
    RecordingSink sink = new RecordingSink();
    engine.join(JoinRequest.localPrefill("local", r.transferId(), prompt, greedy(20), 1), sink);
    sink.awaitFinish();
    assertArrayEquals(expected, sink.tokenIds(), "local prefill must match the reference engine");
    assertEquals(1, engine.localPrefills());
    assertEquals(prompt.length, engine.localPrefillTokens());
    assertEquals(0, node.transfer.opened(), "no KV was pushed");
  }

  @Test
  void aJoinWhoseKvNeverArrivesFailsWithDeadlineExceededAfterTheTransferTimeout() {
    Reservation r = engine.reserve("late", 12, 4);
    RecordingSink sink = new RecordingSink();
    engine.join(
        JoinRequest.prefilled("late", r.transferId(), new int[12], 40, 0, greedy(4), 1, 0), sink);
    node.ticker.advance(TRANSFER_TIMEOUT);
    engine.sweepReservations();
    assertEquals(1, engine.stats().waitingForKv(), "the KV may take the whole transfer timeout");
    assertEquals(r.blocks().length, engine.reservedBlocks());
    node.ticker.advance(1);
    engine.sweepReservations();
    Throwable t = sink.awaitError();
    assertTrue(
        t instanceof ServingException se && se.kind() == ServingException.Kind.DEADLINE_EXCEEDED,
        t.toString());
    assertEquals("KV for request late did not arrive within " + TRANSFER_TIMEOUT, t.getMessage());
    assertEquals(0, engine.reservedBlocks(), "its blocks are freed");
    assertEquals(0, sink.tokenCount(), "no token expected");
  }

  @Test
  void whenTheLoopDiesOfAnErrorEveryRequestItHeldFailsWithUnavailableAndItsKvIsFreed()
      throws Exception {
    FailingExperts failing = new FailingExperts(model.reference.experts());
    try (TestDecodeNode dying =
        new TestDecodeNode(
            "decode-dying",
            allocator,
            model,
            failing,
            new DecodeOptions(8, TRANSFER_TIMEOUT, TTL, LEASE))) {
      DecodeEngine e = dying.engine;
      int[] prompt = model.prompt("decoding when the loop dies");
      RecordingSink decoding = dying.joinPrefilledElsewhere(model, prefillPool, "dec", prompt, 300);
      RecordingSink.await(decoding.tokensReached(3), "3 tokens");
      Reservation w = e.reserve("waiting", 12, 4); // joined, its KV not here yet
      RecordingSink waiting = new RecordingSink();
      e.join(
          JoinRequest.prefilled("waiting", w.transferId(), new int[12], 40, 0, greedy(4), 1, 0),
          waiting);
      Reservation unjoined = e.reserve("unjoined", 20, 8); // its prefill would be under way
      failing.failNextCall(new OutOfMemoryError("Direct buffer memory"));
      failing.awaitHeld(Duration.ofSeconds(30)); // the next decode step is under way
      failing.release();

      for (var s : List.of(Map.entry("dec", decoding), Map.entry("waiting", waiting))) {
        Throwable t = s.getValue().awaitError();
        assertTrue(
            t instanceof ServingException se && se.kind() == ServingException.Kind.UNAVAILABLE,
            s.getKey() + ": " + t);
        assertEquals(
            "this decode node's step loop died (OutOfMemoryError: Direct buffer memory); nothing"
                + " of request "
                + s.getKey()
                + " runs here any more, so continuing or retrying it on another decode node is"
                + " safe; this node must be restarted",
            t.getMessage());
      }
      assertEquals(
          "this decode node's step loop died (OutOfMemoryError: Direct buffer memory)",
          e.loopDied().toCompletableFuture().get(30, TimeUnit.SECONDS));
      assertEquals(dying.pool.totalBlocks(), dying.pool.freeBlocks(), "every KV block is free");
      assertEquals(0, e.reservedBlocks());
      assertEquals(0, e.stats().reservations(), "the unused reservation is freed too");
      assertFalse(e.release(unjoined.transferId()), "nothing is left to release");
      assertFalse(e.accepting());

      ServingException refused = assertThrows(ServingException.class, () -> e.reserve("new", 8, 4));
      assertEquals(ServingException.Kind.UNAVAILABLE, refused.kind(), refused.toString());
      assertEquals(
          "this decode node's step loop died (OutOfMemoryError: Direct buffer memory); choose"
              + " another decode node",
          refused.getMessage());
      ServingException joinRefused =
          assertThrows(
              ServingException.class,
              () ->
                  e.join(
                      JoinRequest.prefilled(
                          "unjoined", unjoined.transferId(), new int[20], 40, 0, greedy(8), 1, 0),
                      new RecordingSink()));
      assertEquals(ServingException.Kind.UNAVAILABLE, joinRefused.kind(), joinRefused.toString());
      assertEquals(0, dying.pool.totalBlocks() - dying.pool.freeBlocks());
    }
  }

  @Test
  void cancellingAJoinedRequestThatWaitsForKvFreesItsBlocks() {
    Reservation r = engine.reserve("cancel-me", 12, 4);
    RecordingSink sink = new RecordingSink();
    engine.join(
        JoinRequest.prefilled("cancel-me", r.transferId(), new int[12], 40, 0, greedy(4), 1, 0),
        sink);
    assertTrue(engine.cancel("cancel-me"));
    Throwable t = sink.awaitError();
    assertTrue(
        t instanceof ServingException se && se.kind() == ServingException.Kind.CANCELLED,
        t.toString());
    assertEquals(node.pool.totalBlocks(), node.pool.freeBlocks());
    assertFalse(engine.cancel("cancel-me"), "a request that ended is not found");
  }

  @Test
  void cancellingADecodingRequestEndsItWithAbortAndFreesItsKv() {
    int[] prompt = model.prompt("cancelled while decoding");
    int maxTokens = 200;
    experts.shut(); // the request stops at its first step: surely decoding when cancelled
    RecordingSink sink = node.joinPrefilledElsewhere(model, prefillPool, "cut", prompt, maxTokens);
    RecordingSink.await(sink.tokensReached(1), "the first token");
    assertEquals(1, engine.stats().reservations());
    assertTrue(engine.cancel("cut"), "the engine holds the decoding request");
    experts.open();
    Emission end = sink.awaitFinish();
    assertEquals("abort", end.finish().wireName());
    assertTrue(sink.tokenCount() <= 2, "it stopped at once: " + sink.tokenCount() + " tokens");
    assertEquals(0, engine.reservedBlocks(), "its KV is freed");
  }

  @Test
  void aReservationNobodyJoinsIsFreedAfterItsTimeToLive() {
    Reservation r = engine.reserve("orphan", 30, 10);
    for (int i = 0; i < 3; i++) { // 3 × 10 s: renewed, so only the time to live decides
      node.ticker.advance(TTL.dividedBy(3));
      engine.renewLeases(List.of(r.transferId()));
      engine.sweepReservations();
    }
    assertEquals(r.blocks().length, engine.reservedBlocks(), "held for its whole time to live");
    node.ticker.advance(1);
    engine.sweepReservations();
    assertEquals(0, engine.reservedBlocks(), "freed once its time to live passed");
    assertEquals(0, engine.leasesExpired());
  }

  @Test
  void aReservationWhoseRouterVanishedIsFreedAtLeaseExpiryNotAfterTheTtl() {
    Reservation r = engine.reserve("orphan", 30, 10);
    assertEquals(r.blocks().length, engine.reservedBlocks(), "the reserved-blocks gauge counts it");
    node.ticker.advance(LEASE.plusNanos(1)); // a third of the 30 s time to live
    engine.sweepReservations();
    assertEquals(1, engine.leasesExpired());
    assertEquals(0, engine.reservedBlocks(), "an unrenewed reservation is freed at lease expiry");
    assertEquals(
        List.of(r.transferId()),
        engine.renewLeases(List.of(r.transferId())),
        "an expired lease is unknown");
  }

  @Test
  void aRenewedLeaseKeepsItsReservationPastSeveralLeases() {
    Reservation r = engine.reserve("kept", 30, 10);
    for (int i = 0; i < 6; i++) { // 6 × a third of a lease: two leases long
      node.ticker.advance(LEASE.dividedBy(3));
      assertTrue(
          engine.renewLeases(List.of(r.transferId())).isEmpty(), "a live reservation is known");
      engine.sweepReservations();
    }
    assertEquals(0, engine.leasesExpired());
    assertTrue(engine.release(r.transferId()), "the renewed reservation is still there");
  }

  @Test
  void aDecodingRequestWhoseLeaseRunsOutIsAbortedAndFreed() {
    int[] prompt = model.prompt("a prompt the decode node prefills itself");
    int maxTokens = 1024 - prompt.length;
    Reservation r = engine.reserve("abandoned", prompt.length, maxTokens);
    RecordingSink sink = new RecordingSink();
    // The prefill and at least one step pass, then the loop waits: still decoding at lease expiry.
    experts.shutAfter(2 * model.reference.config().numLayers());
    engine.join(
        JoinRequest.localPrefill("abandoned", r.transferId(), prompt, greedy(maxTokens), 1), sink);
    RecordingSink.await(sink.tokensReached(2), "2 tokens");
    node.ticker.advance(LEASE.plusNanos(1));
    engine.sweepReservations();
    experts.open();
    Emission end = sink.awaitFinish();
    assertEquals(
        "abort", end.finish().wireName(), "the request must end when nobody renews its lease");
    assertTrue(
        sink.tokenCount() > 1 && sink.tokenCount() < maxTokens,
        "it decoded, then stopped: " + sink.tokenCount() + " tokens");
    assertEquals(1, engine.localPrefills());
    assertEquals(1, engine.leasesExpired());
    assertEquals(0, engine.reservedBlocks(), "the aborted request's KV is freed");
  }

  @Test
  void closingTheEngineFailsItsRequestsWithUnavailableAndFreesTheirKv() {
    Reservation r = engine.reserve("held", 12, 4);
    RecordingSink sink = new RecordingSink();
    engine.join(
        JoinRequest.prefilled("held", r.transferId(), new int[12], 40, 0, greedy(4), 1, 0), sink);
    engine.close();
    Throwable t = sink.awaitError();
    assertTrue(
        t instanceof ServingException se && se.kind() == ServingException.Kind.UNAVAILABLE,
        t.toString());
    assertEquals(0, engine.reservedBlocks());
    ServingException refused =
        assertThrows(ServingException.class, () -> engine.reserve("after", 1, 1));
    assertEquals("decode node is shutting down", refused.getMessage());
  }

  private static SamplingParams greedy(int maxTokens) {
    return TinyModel.greedy(maxTokens);
  }
}
