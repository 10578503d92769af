package dev.pdserve.decode;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.coordination.DrainReport;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvEndpoint;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.serving.ServingException;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.IntStream;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Draining a decode engine: running sequences move to a second decode engine (its own pool and
 * in-memory KV transfer), whose continued streams equal the reference engine's greedy tokens with
 * no token lost or repeated; a sequence that cannot move finishes where it is; the drain's bound is
 * measured on the engine's ticker.
 */
class DecodeDrainTest {
  static final DecodeOptions OPTIONS =
      new DecodeOptions(8, Duration.ofSeconds(5), Duration.ofSeconds(30), Duration.ofSeconds(10));
  static final int MAX_TOKENS = 40;

  static TinyModel model;

  RootAllocator allocator;
  GatedExperts expertsA;
  TestDecodeNode a;
  TestDecodeNode b;
  KvBlockPool prefillPool;
  ExecutorService drainThread;

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
    expertsA = new GatedExperts(model.reference.experts());
    a = new TestDecodeNode("decode-a", allocator, model, expertsA, OPTIONS);
    b = new TestDecodeNode("decode-b", allocator, model, model.reference.experts(), OPTIONS);
    KvLayout layout = KvLayout.of(model.reference.config());
    prefillPool = new KvBlockPool(allocator, "prefill-kv", layout, 64L * layout.blockBytes());
    drainThread = Executors.newSingleThreadExecutor(new NamedThreadFactory("test-drain", true));
  }

  @AfterEach
  void stop() throws Exception {
    expertsA.open();
    drainThread.shutdownNow();
    assertTrue(drainThread.awaitTermination(30, TimeUnit.SECONDS), "the drain thread ended");
    a.close(); // each checks every block of its pool is free
    b.close();
    assertEquals(prefillPool.totalBlocks(), prefillPool.freeBlocks(), "prefill KV must be free");
    prefillPool.close();
    allocator.close(); // fails if any Arrow memory leaked
  }

  /** Reservations on node b, its KV reached at {@code endpoint}; counts what it gave back. */
  private final class TargetsOnB implements MigrationTargets {
    final KvEndpoint endpoint;
    final AtomicInteger released = new AtomicInteger();

    TargetsOnB(KvEndpoint endpoint) {
      this.endpoint = endpoint;
    }

    @Override
    public Optional<MigrationTarget> reserve(String requestId, int kvTokens, int maxNewTokens) {
      Reservation r = b.engine.reserve(requestId, kvTokens, maxNewTokens);
      return Optional.of(new MigrationTarget(b.name, "in-process:b", r.transferId(), endpoint));
    }

    @Override
    public void release(MigrationTarget target) {
      released.incrementAndGet();
      b.engine.release(target.transferId());
    }
  }

  @Test
  void drainMovesRunningSequencesToAnotherEngineWithNoTokenLostOrRepeated() {
    int[][] prompts = {model.prompt("the first stream to move"), model.prompt("and a second one")};
    int[][] expected =
        IntStream.range(0, 2)
            .mapToObj(i -> model.referenceTokens(prompts[i], MAX_TOKENS))
            .toArray(int[][]::new);
    expertsA.shut(); // the sequences stay in a's batch until the drain is under way
    RecordingSink[] onA = new RecordingSink[2];
    for (int i = 0; i < 2; i++) {
      onA[i] = a.joinPrefilledElsewhere(model, prefillPool, "m" + i, prompts[i], MAX_TOKENS);
    }
    RecordingSink.await(onA[0].tokensReached(1), "the first stream's first token on a");
    TargetsOnB targets = new TargetsOnB(b.endpoint());
    DrainReport report = drainWhileRunning(targets);

    assertTrue(report.drained(), "a holds nothing after the drain: " + report.detail());
    assertEquals(2, report.migrated(), "both running sequences moved");
    assertEquals(0, report.finishedLocally());
    assertEquals(2, a.engine.migrations());
    assertEquals(0, targets.released.get(), "no reservation on b was given back");
    for (int i = 0; i < 2; i++) {
      Migration m = onA[i].awaitMigration();
      assertEquals(b.name, m.target().nodeId());
      assertArrayEquals(
          onA[i].tokenIds(), m.generatedIds(), "the migration carries every token a streamed");
      RecordingSink onB = new RecordingSink();
      b.engine.resume(
          JoinRequest.prefilled(
              "m" + i,
              m.target().transferId(),
              prompts[i],
              -1,
              0,
              TinyModel.greedy(MAX_TOKENS),
              1,
              0),
          m.generatedIds(),
          onB);
      assertEquals("length", onB.awaitFinish().finish().wireName());
      assertArrayEquals(
          expected[i],
          concat(onA[i].tokenIds(), onB.tokenIds()),
          "stream m" + i + ": a's tokens then b's must be the reference's, none lost or repeated");
    }
    assertEquals(2, b.transfer.completed(), "b received both sequences' KV");
  }

  @Test
  void aSequenceWhoseTargetIsUnreachableFinishesHere() {
    int[] prompt = model.prompt("nowhere to go");
    int[] expected = model.referenceTokens(prompt, MAX_TOKENS);
    expertsA.shut();
    RecordingSink onA = a.joinPrefilledElsewhere(model, prefillPool, "stay", prompt, MAX_TOKENS);
    RecordingSink.await(onA.tokensReached(1), "the first token on a");
    TargetsOnB targets = new TargetsOnB(new KvEndpoint("unreachable", 9));
    DrainReport report = drainWhileRunning(targets);

    assertTrue(report.drained(), "the sequence finished here: " + report.detail());
    assertEquals(0, report.migrated());
    assertEquals(1, report.finishedLocally(), "it finished on a");
    assertEquals(0, a.engine.migrations());
    assertEquals(1, targets.released.get(), "the reservation on b was given back");
    assertEquals("length", onA.awaitFinish().finish().wireName());
    assertFalse(onA.migrated.isDone(), "its stream did not move");
    assertArrayEquals(expected, onA.tokenIds(), "the whole stream, from a alone");
  }

  @Test
  void aDrainWithoutTargetsLetsItsSequencesFinishHere() {
    int[] prompt = model.prompt("finish where you are");
    int[] expected = model.referenceTokens(prompt, MAX_TOKENS);
    RecordingSink onA = a.joinPrefilledElsewhere(model, prefillPool, "here", prompt, MAX_TOKENS);
    DrainReport report = a.engine.drain(null, null, Duration.ofMinutes(1));
    assertTrue(report.drained(), report.detail());
    assertEquals(0, report.migrated());
    assertEquals(1, report.finishedLocally());
    assertEquals("length", onA.awaitFinish().finish().wireName());
    assertArrayEquals(expected, onA.tokenIds());
    assertFalse(a.engine.accepting(), "a drained engine takes no new reservations");
  }

  @Test
  void aDrainEndsUndrainedWhenItsBoundPassesOnTheTicker() {
    Reservation r = a.engine.reserve("never-joined", 12, 4); // its prefill is under way
    CompletableFuture<DrainReport> drain =
        CompletableFuture.supplyAsync(
            () -> a.engine.drain(null, null, Duration.ofSeconds(5)), drainThread);
    awaitDrainStarted();
    ServingException refused =
        assertThrows(ServingException.class, () -> a.engine.reserve("new", 1, 1));
    assertEquals(ServingException.Kind.UNAVAILABLE, refused.kind());
    assertFalse(drain.isDone(), "the drain waits for the reservation");
    a.ticker.advance(Duration.ofSeconds(5)); // within its 10 s lease and 30 s time to live
    DrainReport report = RecordingSink.await(drain, "the drain to give up");
    assertFalse(report.drained());
    assertEquals("1 sequence(s) or reservation(s) still held", report.detail());
    assertTrue(a.engine.release(r.transferId()), "the reservation is still held");
  }

  /**
   * Drains a on another thread while its sequences are held at a step, and lets them go on once the
   * drain is under way.
   */
  private DrainReport drainWhileRunning(MigrationTargets targets) {
    CompletableFuture<DrainReport> drain =
        CompletableFuture.supplyAsync(
            () -> a.engine.drain(targets, b.transfer, Duration.ofMinutes(1)), drainThread);
    awaitDrainStarted();
    expertsA.open();
    return RecordingSink.await(drain, "the drain to end");
  }

  /** A drain refuses reservations once it began handing sequences off. */
  private void awaitDrainStarted() {
    long guard = System.nanoTime() + TimeUnit.SECONDS.toNanos(60); // a hang guard only
    while (a.engine.accepting()) {
      assertTrue(System.nanoTime() < guard, "the drain did not start");
      Thread.onSpinWait();
    }
  }

  private static int[] concat(int[] x, int[] y) {
    return IntStream.concat(IntStream.of(x), IntStream.of(y)).toArray();
  }
}
