package dev.pdserve.decode;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.kv.flight.KvTransferServer;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.engine.Emission;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.LocalExperts;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.tokenizer.ByteTokenizer;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelWeights;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.flight.Location;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The decode role's reservation life cycle, with a real Flight server, pool and ORT sessions. */
class DecodeEngineTest {
  ModelConfig cfg = ModelPresets.get("tiny");
  RootAllocator allocator;
  ModelWeights weights;
  ModelRunner runner;
  ExpertCompute experts;
  KvBlockPool pool;
  KvTransferServer server;
  DecodeEngine engine;

  @BeforeEach
  void start() throws Exception {
    allocator = new RootAllocator();
    OrtRuntime rt = OrtRuntime.shared();
    weights = new ModelWeights(cfg, new DummyWeights(cfg, 42), rt);
    runner = new ModelRunner(cfg, weights, rt);
    experts = new ExpertCompute(cfg, weights, rt, ExpertCompute.HostedExperts.ALL);
    KvLayout layout = KvLayout.of(cfg);
    pool = new KvBlockPool(allocator, layout, 64L * layout.blockBytes());
    server =
        new KvTransferServer(allocator, pool, Location.forGrpcInsecure("127.0.0.1", 0)).start();
    engine =
        new DecodeEngine(
            runner,
            new LocalExperts(experts),
            pool,
            server,
            ByteTokenizer.create(),
            new DecodeOptions(8, Duration.ofMillis(500), Duration.ofSeconds(1)));
  }

  @AfterEach
  void stop() throws Exception {
    engine.close();
    server.close();
    assertEquals(
        pool.totalBlocks(), pool.freeBlocks(), "every KV block must be free after the test");
    pool.close();
    experts.close();
    runner.close();
    weights.close();
    allocator.close(); // fails if any Arrow memory leaked
  }

  @Test
  void releaseFreesAnUnusedReservation() {
    Reservation r = engine.reserve("r1", 40, 20);
    assertEquals(pool.layout().blocksFor(60), r.blocks().length);
    assertEquals(pool.totalBlocks() - r.blocks().length, pool.freeBlocks());
    assertTrue(engine.release(r.transferId()));
    assertFalse(engine.release(r.transferId()), "a second release finds nothing");
    assertEquals(pool.totalBlocks(), pool.freeBlocks());
  }

  @Test
  void aReservationNobodyJoinsIsFreedAfterItsTimeToLive() throws Exception {
    engine.reserve("orphan", 30, 10);
    assertTrue(pool.freeBlocks() < pool.totalBlocks());
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
    while (pool.freeBlocks() < pool.totalBlocks() && System.nanoTime() < deadline) {
      Thread.sleep(50);
    }
    assertEquals(
        pool.totalBlocks(),
        pool.freeBlocks(),
        "the sweeper frees reservations not joined within the TTL");
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
                    new JoinRequest(
                        "x",
                        "no-such-transfer",
                        new int[] {1, 2},
                        3,
                        0,
                        SamplingParams.greedy(4),
                        1,
                        0),
                    sink()));
    assertEquals(ServingException.Kind.NOT_FOUND, e.kind());
  }

  @Test
  void aJoinWhoseKvNeverArrivesFailsWithDeadlineExceededAndFreesItsBlocks() throws Exception {
    Reservation r = engine.reserve("late", 12, 4);
    CompletableFuture<Throwable> error = new CompletableFuture<>();
    engine.join(
        new JoinRequest("late", r.transferId(), new int[12], 40, 0, SamplingParams.greedy(4), 1, 0),
        new TokenSink() {
          @Override
          public void onToken(Emission e) {
            error.completeExceptionally(new AssertionError("no token expected"));
          }

          @Override
          public void onError(Throwable t) {
            error.complete(t);
          }
        });
    Throwable t = error.get(10, TimeUnit.SECONDS);
    assertTrue(
        t instanceof ServingException se && se.kind() == ServingException.Kind.DEADLINE_EXCEEDED,
        t.toString());
    assertEquals(pool.totalBlocks(), pool.freeBlocks());
  }

  @Test
  void cancellingAJoinedRequestThatWaitsForKvFreesItsBlocks() throws Exception {
    Reservation r = engine.reserve("cancel-me", 12, 4);
    CompletableFuture<Throwable> error = new CompletableFuture<>();
    engine.join(
        new JoinRequest(
            "cancel-me", r.transferId(), new int[12], 40, 0, SamplingParams.greedy(4), 1, 0),
        new TokenSink() {
          @Override
          public void onToken(Emission e) {}

          @Override
          public void onError(Throwable t) {
            error.complete(t);
          }
        });
    assertTrue(engine.cancel("cancel-me"));
    Throwable t = error.get(10, TimeUnit.SECONDS);
    assertTrue(
        t instanceof ServingException se && se.kind() == ServingException.Kind.CANCELLED,
        t.toString());
    assertEquals(pool.totalBlocks(), pool.freeBlocks());
  }

  /** Replaces the engine with one whose reservations live {@code lease} without a renewal. */
  private void withLease(Duration lease) {
    engine.close();
    engine =
        new DecodeEngine(
            runner,
            new LocalExperts(experts),
            pool,
            server,
            ByteTokenizer.create(),
            new DecodeOptions(8, Duration.ofSeconds(30), Duration.ofSeconds(120), lease));
  }

  private void awaitPoolFull(Duration within, String why) throws InterruptedException {
    long deadline = System.nanoTime() + within.toNanos();
    while (pool.freeBlocks() < pool.totalBlocks() && System.nanoTime() < deadline) {
      Thread.sleep(20);
    }
    assertEquals(pool.totalBlocks(), pool.freeBlocks(), why);
  }

  @Test
  void aReservationWhoseRouterVanishedIsFreedAtLeaseExpiryNotAfterTheTtl() throws Exception {
    withLease(Duration.ofMillis(1000));
    Reservation r = engine.reserve("orphan", 30, 10);
    assertEquals(
        r.blocks().length,
        engine.reservedBlocks(),
        "the reserved-blocks gauge counts the reservation");
    awaitPoolFull(
        Duration.ofSeconds(5),
        "an unrenewed reservation must be freed at lease expiry (1 s), long before the 120 s TTL");
    assertEquals(1, engine.leasesExpired());
    assertEquals(0, engine.reservedBlocks());
    assertEquals(
        java.util.List.of(r.transferId()),
        engine.renewLeases(java.util.List.of(r.transferId())),
        "an expired lease is unknown");
  }

  @Test
  void aRenewedLeaseKeepsItsReservationPastSeveralLeases() throws Exception {
    withLease(Duration.ofMillis(600));
    Reservation r = engine.reserve("kept", 30, 10);
    long end = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(2000);
    while (System.nanoTime() < end) {
      assertTrue(
          engine.renewLeases(java.util.List.of(r.transferId())).isEmpty(),
          "a live reservation is known");
      Thread.sleep(200); // every lease/3
    }
    assertEquals(0, engine.leasesExpired());
    assertTrue(engine.release(r.transferId()), "the renewed reservation is still there");
  }

  @Test
  void aDecodingRequestWhoseLeaseRunsOutIsAbortedAndFreed() throws Exception {
    // A lease far shorter than the request: ~980 tokens take over a second even at the fastest
    // decode rate measured here (~750 tokens/s at batch 1), the lease runs out after 200 ms.
    withLease(Duration.ofMillis(200));
    int[] prompt = "a prompt the decode node prefills itself".chars().toArray();
    int maxTokens = 1024 - prompt.length;
    Reservation r = engine.reserve("abandoned", prompt.length, maxTokens);
    CompletableFuture<Emission> last = new CompletableFuture<>();
    java.util.concurrent.atomic.AtomicInteger tokens =
        new java.util.concurrent.atomic.AtomicInteger();
    SamplingParams params =
        SamplingParams.builder().temperature(0).maxTokens(maxTokens).ignoreEos(true).build();
    engine.join(
        JoinRequest.localPrefill("abandoned", r.transferId(), prompt, params, 1),
        new TokenSink() {
          @Override
          public void onToken(Emission e) {
            tokens.incrementAndGet();
            if (e.finished()) {
              last.complete(e);
            }
          }

          @Override
          public void onError(Throwable t) {
            last.completeExceptionally(t);
          }
        });
    Emission end = last.get(20, TimeUnit.SECONDS);
    assertEquals(
        "abort", end.finish().wireName(), "the request must end when nobody renews its lease");
    assertTrue(
        tokens.get() > 1 && tokens.get() < maxTokens,
        "it decoded, then stopped: " + tokens.get() + " tokens");
    assertEquals(1, engine.localPrefills());
    assertEquals(1, engine.leasesExpired());
    awaitPoolFull(Duration.ofSeconds(2), "the aborted request's KV must be freed");
  }

  private static TokenSink sink() {
    return new TokenSink() {
      @Override
      public void onToken(Emission e) {}

      @Override
      public void onError(Throwable t) {}
    };
  }
}
