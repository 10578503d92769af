package dev.pdserve.prefill;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.google.common.testing.FakeTicker;
import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.coordination.DrainReport;
import dev.pdserve.core.kv.InMemoryKvTransfer;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvEndpoint;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.kv.PagedSequenceKv;
import dev.pdserve.core.kv.PrefixHasher;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.engine.ContiguousKv;
import dev.pdserve.model.engine.ExpertBackend;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.FailingExperts;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.LocalExperts;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.engine.SequenceKv;
import dev.pdserve.model.engine.SequenceStep;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.weights.ModelWeights;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The prefill role end to end inside one JVM: a real ORT tiny model computes prompts into a real KV
 * pool and pushes them, through {@link InMemoryKvTransfer}, into a second pool standing for the
 * decode node's. What arrives there is held to the single-process reference engine.
 */
class PrefillEngineTest {
  static final KvEndpoint DECODE = new KvEndpoint("decode-0", 7000);
  static final int PREFILL_BLOCKS = 64;
  static final int DECODE_BLOCKS = 128;
  static final long WAIT_SECONDS = 30; // a hang guard only: nothing here waits on purpose

  static LoadedModel model;
  static ModelConfig cfg;
  static ReferenceEngine reference;
  static ModelWeights weights;
  static ModelRunner runner;
  static ExpertCompute experts;

  RootAllocator allocator;
  KvBlockPool prefillPool;
  KvBlockPool decodePool;
  InMemoryKvTransfer decode;
  GatedKvPusher pusher;
  final RecordingMetrics metrics = new RecordingMetrics();
  final FakeTicker clock = new FakeTicker();
  final ObservedTicker ticker = new ObservedTicker(clock);
  PrefillEngine engine;

  /** A request as the decode node sees it: the blocks it reserved for the prompt's KV. */
  record Reserved(
      String requestId, int[] prompt, int[] blocks, CompletableFuture<PrefillResult> result) {
    String transferId() {
      return "t-" + requestId;
    }
  }

  @BeforeAll
  static void loadModel() {
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    cfg = model.config();
    OrtRuntime rt = OrtRuntime.shared();
    reference = new ReferenceEngine(model, rt);
    weights = new ModelWeights(cfg, model.weights(), rt);
    runner = new ModelRunner(cfg, weights, rt);
    experts = new ExpertCompute(cfg, weights, rt, ExpertCompute.HostedExperts.ALL);
  }

  @AfterAll
  static void closeModel() {
    experts.close();
    runner.close();
    weights.close();
    reference.close();
    model.close();
  }

  @BeforeEach
  void pools() {
    allocator = new RootAllocator();
    KvLayout layout = KvLayout.of(cfg);
    prefillPool =
        new KvBlockPool(allocator, "prefill", layout, PREFILL_BLOCKS * layout.blockBytes());
    decodePool = new KvBlockPool(allocator, "decode", layout, DECODE_BLOCKS * layout.blockBytes());
    decode = new InMemoryKvTransfer(decodePool, DECODE);
    pusher = new GatedKvPusher(decode);
  }

  @AfterEach
  void everyBlockIsFree() {
    if (engine != null) {
      engine.close();
      if (engine.prefixCache() != null) {
        assertEquals(0, engine.prefixCache().pinnedBlocks(), "no cached block stays pinned");
        assertEquals(
            prefillPool.totalBlocks(),
            prefillPool.freeBlocks() + engine.prefixCache().held(),
            "every prefill block is free or cached");
        engine.prefixCache().clear();
      }
    }
    assertEquals(
        prefillPool.totalBlocks(), prefillPool.freeBlocks(), "every prefill KV block is free");
    assertEquals(
        decodePool.totalBlocks(), decodePool.freeBlocks(), "every decode KV block is free");
    prefillPool.close();
    decodePool.close();
    allocator.close(); // fails if Arrow memory leaked
  }

  void start(PrefillOptions options, PrefixHasher hasher) {
    start(options, hasher, new LocalExperts(experts));
  }

  void start(PrefillOptions options, PrefixHasher hasher, ExpertBackend backend) {
    engine =
        new PrefillEngine(
            PrefillEngineSettings.builder(runner, backend, prefillPool, pusher, model.tokenizer())
                .options(options)
                .metrics(metrics)
                .prefixHasher(hasher)
                .ticker(ticker)
                .build());
  }

  static int[] prompt(long seed, int tokens) {
    Random r = new Random(seed);
    int[] ids = new int[tokens];
    for (int i = 0; i < tokens; i++) {
      ids[i] = 3 + r.nextInt(cfg.vocabSize() - 3);
    }
    return ids;
  }

  /** Reserves the prompt's blocks on the "decode node", expects its transfer and submits it. */
  Reserved submit(String requestId, int[] prompt) {
    int[] blocks = decodePool.allocate(decodePool.layout().blocksFor(prompt.length));
    decode.expect("t-" + requestId, blocks, prompt.length);
    return new Reserved(
        requestId,
        prompt,
        blocks,
        engine.submit(job(requestId, prompt, DECODE.host(), DECODE.port())));
  }

  static PrefillJob job(String requestId, int[] prompt, String host, int port) {
    return new PrefillJob(
        requestId, prompt, SamplingParams.greedy(1), 7, "t-" + requestId, host, port);
  }

  static PrefillResult await(Reserved r) throws Exception {
    return r.result().get(WAIT_SECONDS, TimeUnit.SECONDS);
  }

  /** The failure the request ended with, as a ServingException. */
  static ServingException failure(CompletableFuture<PrefillResult> result) throws Exception {
    try {
      PrefillResult r = result.get(WAIT_SECONDS, TimeUnit.SECONDS);
      throw new AssertionError("expected a failure, got " + r);
    } catch (ExecutionException e) {
      if (e.getCause() instanceof ServingException se) {
        return se;
      }
      throw new AssertionError("expected a ServingException", e.getCause());
    }
  }

  /** What arrived in the decode pool, {@code [layer][K, V][kvHead·position·headDim]}; frees it. */
  float[][][] takeKv(Reserved r) {
    PagedSequenceKv kv = PagedSequenceKv.adopt(decodePool, r.blocks(), r.prompt().length);
    try {
      return read(kv, r.prompt().length);
    } finally {
      kv.release();
    }
  }

  /** Gives up a reservation whose KV never came whole. */
  void dropReservation(Reserved r) {
    decode.cancel(r.transferId());
    decodePool.free(r.blocks());
  }

  static float[][][] read(SequenceKv kv, int positions) {
    float[][][] out = new float[cfg.numLayers()][2][];
    for (int layer = 0; layer < cfg.numLayers(); layer++) {
      float[] k = new float[cfg.numKvHeads() * positions * cfg.headDim()];
      float[] v = new float[k.length];
      kv.read(layer, k, v, 0, positions);
      out[layer][0] = k;
      out[layer][1] = v;
    }
    return out;
  }

  /** The KV the single-process path computes for the whole prompt at once. */
  static float[][][] referenceKv(int[] prompt) {
    ContiguousKv kv = new ContiguousKv(cfg, prompt.length);
    reference.runner().forward(List.of(SequenceStep.text(prompt, kv, true)), reference.experts());
    return read(kv, prompt.length);
  }

  static int referenceFirstToken(int[] prompt) {
    return reference.generate(
            new GenerateRequest(
                "reference", Prompt.tokens(prompt), SamplingParams.greedy(1), false))
        .tokenIds()[0];
  }

  /** Asserts the request's pushed KV and first token are the reference's. */
  void assertMatchesReference(Reserved r, PrefillResult result) {
    assertEquals(
        referenceFirstToken(r.prompt()),
        result.firstToken(),
        r.requestId() + ": first token differs from the reference engine's first greedy token");
    float[][][] expected = referenceKv(r.prompt());
    float[][][] pushed = takeKv(r);
    for (int layer = 0; layer < cfg.numLayers(); layer++) {
      assertArrayEquals(
          expected[layer][0],
          pushed[layer][0],
          r.requestId() + ": K of layer " + layer + " differs");
      assertArrayEquals(
          expected[layer][1],
          pushed[layer][1],
          r.requestId() + ": V of layer " + layer + " differs");
    }
  }

  @Test
  void thePushedKvAndFirstTokenAreTheReferenceEngines() throws Exception {
    start(PrefillOptions.defaults(), null);
    Reserved r = submit("r1", prompt(1, 41));
    PrefillResult result = await(r);
    assertMatchesReference(r, result);
    assertEquals(0, result.cachedTokens());
    assertEquals(
        (long) cfg.numLayers()
            * prefillPool.layout().blocksFor(41)
            * prefillPool.layout().layerBytes(),
        result.kvBytes(),
        "every layer of every block is pushed once");
    assertEquals(1, decode.completed(), "the decode side saw the transfer arrive whole");
    assertEquals(1, engine.stats().completed());
  }

  @Test
  void aLongPromptComputedInChunksPushesTheSameKv() throws Exception {
    start(new PrefillOptions(16, 16), null);
    Reserved r = submit("long", prompt(2, 100));
    assertMatchesReference(r, await(r));
    List<Integer> tokensPerStep = metrics.steps().stream().map(s -> s[1]).toList();
    assertEquals(
        List.of(16, 16, 16, 16, 16, 16, 4),
        tokensPerStep,
        "a 100-token prompt is computed in chunks of 16");
  }

  @Test
  void promptsQueuedTogetherAreComputedInOneStep() throws Exception {
    start(PrefillOptions.defaults(), null);
    GatedKvPusher.Gate loopBusy = pusher.holdNext(GatedKvPusher.Point.OPEN);
    Reserved blocker = submit("blocker", prompt(3, 10));
    loopBusy.awaitReached(); // the loop is starting the blocker: the next three queue up
    List<Reserved> batch =
        List.of(submit("a", prompt(4, 7)), submit("b", prompt(5, 33)), submit("c", prompt(6, 18)));
    loopBusy.release();
    assertMatchesReference(blocker, await(blocker));
    for (Reserved r : batch) {
      assertMatchesReference(r, await(r));
    }
    assertTrue(
        metrics.steps().stream().anyMatch(s -> s[0] == 3 && s[1] == 7 + 33 + 18),
        "a, b and c go in one step of 58 tokens; steps were "
            + metrics.steps().stream().map(Arrays::toString).toList());
    assertEquals(2, engine.stats().steps(), "the blocker's step, then theirs");
  }

  @Test
  void aPromptSharingACachedPrefixReportsItAndStillPushesTheWholePromptsKv() throws Exception {
    int bs = prefillPool.layout().blockSize();
    start(PrefillOptions.defaults(), PrefixHasher.text(cfg.name(), bs));
    int[] first = prompt(7, 4 * bs);
    Reserved r1 = submit("first", first);
    PrefillResult p1 = await(r1);
    assertEquals(0, p1.cachedTokens(), "nothing is cached before the first prompt");
    assertMatchesReference(r1, p1);

    int[] second = Arrays.copyOf(first, 3 * bs + 20); // shares the first three blocks
    System.arraycopy(prompt(8, 20), 0, second, 3 * bs, 20);
    Reserved r2 = submit("second", second);
    PrefillResult p2 = await(r2);
    assertEquals(3 * bs, p2.cachedTokens(), "the shared three blocks come from the prefix cache");
    assertEquals(3 * bs, engine.prefixCacheHits());
    assertEquals(first.length + second.length, engine.prefixCacheQueries());
    assertMatchesReference(r2, p2); // the cold reference computes the whole prompt
  }

  @Test
  void aPushThatCannotOpenFailsTheJobWithUnavailableNamingTheEndpointAndFreesItsBlocks()
      throws Exception {
    start(
        PrefillOptions.defaults(), PrefixHasher.text(cfg.name(), prefillPool.layout().blockSize()));
    CompletableFuture<PrefillResult> result =
        engine.submit(job("lost", prompt(9, 40), "decode-9", 7009));
    ServingException e = failure(result);
    assertEquals(ServingException.Kind.UNAVAILABLE, e.kind(), e.toString());
    assertTrue(
        e.getMessage().startsWith("cannot open a KV transfer to decode node decode-9:7009: "),
        e.getMessage());
    assertEquals(prefillPool.totalBlocks(), prefillPool.freeBlocks(), "its blocks are freed");
    assertEquals(0, engine.prefixCache().pinnedBlocks(), "no cached block stays pinned");
    PrefillStats stats = engine.stats();
    assertEquals(0, stats.queuedJobs(), "the job is gone");
    assertEquals(0, stats.queuedPromptTokens(), "its tokens are no longer queued");
    assertEquals(0, engine.runningJobs());
  }

  @Test
  void whenTheLoopDiesOfAnErrorEveryPromptItHeldFailsWithUnavailableAndItsKvIsFreed()
      throws Exception {
    FailingExperts failing = new FailingExperts(new LocalExperts(experts));
    start(PrefillOptions.defaults(), null, failing);
    Reserved before = submit("before", prompt(20, 9));
    assertMatchesReference(before, await(before)); // the loop works until the Error
    failing.failNextCall(new OutOfMemoryError("Direct buffer memory"));
    Reserved computing = submit("computing", prompt(21, 40));
    failing.awaitHeld(Duration.ofSeconds(WAIT_SECONDS)); // its step is under way, KV allocated
    assertTrue(prefillPool.freeBlocks() < prefillPool.totalBlocks(), "the step holds KV");
    List<Reserved> queued = List.of(submit("q1", prompt(22, 17)), submit("q2", prompt(23, 70)));
    failing.release();

    List<Reserved> held = new ArrayList<>(queued);
    held.add(0, computing);
    for (Reserved r : held) {
      ServingException e = failure(r.result());
      assertEquals(ServingException.Kind.UNAVAILABLE, e.kind(), r.requestId() + ": " + e);
      assertEquals(
          "this prefill node's step loop died (OutOfMemoryError: Direct buffer memory);"
              + " nothing of request "
              + r.requestId()
              + " runs here any more, so retrying it (on another prefill node) is safe;"
              + " this node must be restarted",
          e.getMessage());
      dropReservation(r);
    }
    assertEquals(
        "this prefill node's step loop died (OutOfMemoryError: Direct buffer memory)",
        engine.loopDied().toCompletableFuture().get(WAIT_SECONDS, TimeUnit.SECONDS),
        "the engine tells its node");
    assertEquals(prefillPool.totalBlocks(), prefillPool.freeBlocks(), "every prefill block free");
    PrefillStats stats = engine.stats();
    assertEquals(0, stats.queuedJobs(), "no prompt is held any more");
    assertEquals(0, stats.queuedPromptTokens());
    assertEquals(0, engine.runningJobs());
    assertFalse(engine.accepting());

    ServingException refused = failure(engine.submit(job("after", prompt(24, 5), "d", 1)));
    assertEquals(ServingException.Kind.UNAVAILABLE, refused.kind(), refused.toString());
    assertTrue(
        refused.getMessage().startsWith("this prefill node's step loop died (OutOfMemoryError"),
        refused.getMessage());
    assertEquals(0, engine.stats().queuedJobs(), "a refused prompt is not held");
  }

  @Test
  void cancellingAQueuedPromptFailsItWithCancelled() throws Exception {
    start(PrefillOptions.defaults(), null);
    assertFalse(engine.cancel("nobody"), "nothing to cancel");
    GatedKvPusher.Gate loopBusy = pusher.holdNext(GatedKvPusher.Point.OPEN);
    Reserved blocker = submit("blocker", prompt(10, 12));
    loopBusy.awaitReached();
    Reserved victim = submit("victim", prompt(11, 30));
    assertTrue(engine.cancel("victim"));
    loopBusy.release();
    ServingException e = failure(victim.result());
    assertEquals(ServingException.Kind.CANCELLED, e.kind(), e.toString());
    assertEquals("request victim was cancelled", e.getMessage());
    dropReservation(victim);
    assertMatchesReference(blocker, await(blocker));
    assertEquals(1, decode.opened(), "the cancelled prompt never opened a push");
  }

  @Test
  void cancellingAPromptBetweenChunksStopsItAndFreesItsKv() throws Exception {
    start(new PrefillOptions(16, 16), null);
    GatedKvPusher.Gate midStep = pusher.holdNext(GatedKvPusher.Point.FIRST_LAYER);
    Reserved r = submit("long", prompt(12, 64));
    midStep.awaitReached(); // its first chunk is being computed
    assertTrue(engine.cancel("long"));
    midStep.release();
    ServingException e = failure(r.result());
    assertEquals(ServingException.Kind.CANCELLED, e.kind(), e.toString());
    assertEquals(1, metrics.steps().size(), "it stopped after the chunk under way");
    assertEquals(prefillPool.totalBlocks(), prefillPool.freeBlocks(), "its KV is freed");
    assertEquals(0, engine.stats().queuedPromptTokens());
    dropReservation(r);
  }

  @Test
  void aPromptLargerThanThePoolIsRefusedWithResourceExhausted() throws Exception {
    start(PrefillOptions.defaults(), null);
    int tokens = PREFILL_BLOCKS * prefillPool.layout().blockSize() + 1;
    ServingException e = failure(engine.submit(job("huge", new int[tokens], "decode-0", 7000)));
    assertEquals(ServingException.Kind.RESOURCE_EXHAUSTED, e.kind(), e.toString());
    assertEquals(
        "prompt of "
            + tokens
            + " tokens needs "
            + (PREFILL_BLOCKS + 1)
            + " KV blocks; this prefill node's pool holds "
            + PREFILL_BLOCKS,
        e.getMessage());
    assertEquals(0, engine.stats().queuedJobs(), "nothing was queued");
  }

  @Test
  void completedCountsEveryPromptWhenManyFinishConcurrently() throws Exception {
    start(new PrefillOptions(64, 64), null);
    List<Reserved> all = new ArrayList<>();
    for (int i = 0; i < 48; i++) {
      all.add(submit("many-" + i, prompt(100 + i, 3 + i % 9)));
    }
    for (Reserved r : all) {
      await(r);
      takeKv(r);
    }
    PrefillStats stats = engine.stats();
    assertEquals(48, stats.completed(), "every handed-over prompt is counted once");
    assertEquals(0, stats.queuedJobs());
    assertEquals(0, stats.queuedPromptTokens());
    assertEquals(0, engine.runningJobs());
    assertEquals(0, engine.waitingJobs());
  }

  @Test
  void drainWaitsForAPromptHandingItsKvOverAndTheBoundIsTheTickers() throws Exception {
    start(PrefillOptions.defaults(), null);
    GatedKvPusher.Gate ack = pusher.holdNext(GatedKvPusher.Point.COMPLETE);
    Reserved held = submit("held", prompt(13, 20));
    ack.awaitReached(); // computed; waits for the decode node's acknowledgement
    assertEquals(1, engine.runningJobs());
    ExecutorService drainer =
        Executors.newSingleThreadExecutor(new NamedThreadFactory("drain", true));
    try {
      Future<DrainReport> drain = startDrain(drainer, Duration.ofSeconds(30));
      assertFalse(drain.isDone(), "the drain returned while a prompt was still held");
      ServingException refused =
          failure(engine.submit(job("late", prompt(14, 5), "decode-0", 7000)));
      assertEquals(ServingException.Kind.UNAVAILABLE, refused.kind());
      assertTrue(refused.getMessage().contains("not taking prefill work"), refused.getMessage());

      clock.advance(Duration.ofSeconds(29)); // within the bound: it keeps waiting
      ack.release();
      assertEquals(new DrainReport(true, 0, 1, ""), drain.get(WAIT_SECONDS, TimeUnit.SECONDS));
      assertMatchesReference(held, await(held));
    } finally {
      drainer.shutdownNow();
    }
  }

  @Test
  void drainGivesUpOnceItsTimeoutPassesOnTheTicker() throws Exception {
    start(PrefillOptions.defaults(), null);
    GatedKvPusher.Gate ack = pusher.holdNext(GatedKvPusher.Point.COMPLETE);
    Reserved held = submit("held", prompt(15, 20));
    ack.awaitReached();
    ExecutorService drainer =
        Executors.newSingleThreadExecutor(new NamedThreadFactory("drain", true));
    try {
      Future<DrainReport> drain = startDrain(drainer, Duration.ofSeconds(30));
      clock.advance(Duration.ofSeconds(31));
      assertEquals(
          new DrainReport(false, 0, 0, "1 prompt(s) still being prefilled"),
          drain.get(WAIT_SECONDS, TimeUnit.SECONDS));
    } finally {
      ack.release();
      drainer.shutdownNow();
    }
    assertMatchesReference(held, await(held));
  }

  /**
   * Starts a drain and returns once it fixed its deadline (its first ticker read, after it counted
   * the prompts it holds).
   */
  Future<DrainReport> startDrain(ExecutorService on, Duration timeout)
      throws InterruptedException, TimeoutException {
    ticker.forgetReads();
    Future<DrainReport> drain = on.submit(() -> engine.drain(timeout));
    if (!ticker.awaitRead(Duration.ofSeconds(WAIT_SECONDS))) {
      fail("the drain never read its clock");
    }
    return drain;
  }
}
