package dev.pdserve.prefill;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.kv.InMemoryKvTransfer;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvEndpoint;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.kv.PagedSequenceKv;
import dev.pdserve.core.kv.PrefixHasher;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.engine.ContiguousKv;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.ImageSpan;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.LocalExperts;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.PrefillInputs;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.engine.SequenceKv;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.vision.EncodedImage;
import dev.pdserve.model.vision.EncoderCache;
import dev.pdserve.model.vision.PromptImage;
import dev.pdserve.model.vision.TestImages;
import dev.pdserve.model.vision.VisionEncoder;
import dev.pdserve.model.weights.ModelWeights;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The prefill role with images: the tiny VL model's vision tower, a real ORT session for each
 * graph, prompts with images pushed through {@link InMemoryKvTransfer} into a decode pool. What
 * arrives is held to the single-process path ({@link PrefillInputs} over the reference engine's
 * runner and vision encoder), the first token to the reference engine's.
 */
class PrefillEngineVisionTest {
  static final KvEndpoint DECODE = new KvEndpoint("decode-0", 7000);
  static final long WAIT_SECONDS = 30; // a hang guard only

  // 56 x 56 pixels: 2 x 2 = 4 image tokens. 224 x 112: 4 rows x 8 columns = 32, two KV blocks.
  static final EncodedImage SQUARE = TestImages.png(56, 56, 1);
  static final EncodedImage WIDE = TestImages.png(224, 112, 2);
  static final EncodedImage OTHER_WIDE = TestImages.png(224, 112, 3);

  static LoadedModel model;
  static ModelConfig cfg;
  static ReferenceEngine reference;
  static ModelWeights weights;
  static ModelRunner runner;
  static ExpertCompute experts;
  static VisionEncoder vision;

  RootAllocator allocator;
  KvBlockPool prefillPool;
  KvBlockPool decodePool;
  InMemoryKvTransfer decode;
  EncoderCache cache;
  final RecordingMetrics metrics = new RecordingMetrics();
  PrefillEngine engine;

  record Reserved(
      String requestId, int[] prompt, int[] blocks, CompletableFuture<PrefillResult> result) {}

  @BeforeAll
  static void loadModel() {
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    cfg = model.config();
    OrtRuntime rt = OrtRuntime.shared();
    reference = new ReferenceEngine(model, rt);
    weights = new ModelWeights(cfg, model.weights(), rt);
    runner = new ModelRunner(cfg, weights, rt);
    experts = new ExpertCompute(cfg, weights, rt, ExpertCompute.HostedExperts.ALL);
    // attention in blocks of 5 query patches (16 and 128 patches: several blocks and a partial
    // last one) while the reference engine encodes these images whole: the tokens must not care
    vision = new VisionEncoder(cfg, weights, rt, 5);
  }

  @AfterAll
  static void closeModel() {
    vision.close();
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
    prefillPool = new KvBlockPool(allocator, "prefill", layout, 64 * layout.blockBytes());
    decodePool = new KvBlockPool(allocator, "decode", layout, 128 * layout.blockBytes());
    decode = new InMemoryKvTransfer(decodePool, DECODE);
    cache = new EncoderCache(1 << 20);
  }

  @AfterEach
  void everyBlockIsFree() {
    if (engine != null) {
      engine.close();
      if (engine.prefixCache() != null) {
        assertEquals(0, engine.prefixCache().pinnedBlocks(), "no cached block stays pinned");
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
    engine =
        new PrefillEngine(
            PrefillEngineSettings.builder(
                    runner, new LocalExperts(experts), prefillPool, decode, model.tokenizer())
                .options(options)
                .metrics(metrics)
                .prefixHasher(hasher)
                .vision(vision, cache)
                .build());
  }

  static PrefillJob job(String requestId, int[] ids, List<PromptImage> images) {
    return new PrefillJob(
        requestId,
        ids,
        SamplingParams.greedy(1),
        7,
        "t-" + requestId,
        DECODE.host(),
        DECODE.port(),
        images);
  }

  /** Reserves the prompt's blocks on the "decode node", expects its transfer and submits it. */
  Reserved submit(String requestId, ImagePrompt p) {
    return submit(requestId, p.ids(), p.images());
  }

  Reserved submit(String requestId, int[] ids, List<PromptImage> images) {
    int[] blocks = decodePool.allocate(decodePool.layout().blocksFor(ids.length));
    decode.expect("t-" + requestId, blocks, ids.length);
    return new Reserved(requestId, ids, blocks, engine.submit(job(requestId, ids, images)));
  }

  static PrefillResult await(Reserved r) throws Exception {
    return r.result().get(WAIT_SECONDS, TimeUnit.SECONDS);
  }

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

  /** Gives up a reservation whose KV never came. */
  void dropReservation(Reserved r) {
    decode.cancel("t-" + r.requestId());
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

  /** The KV the single-process path computes for the whole prompt and its images at once. */
  static float[][][] referenceKv(ImagePrompt p) {
    PrefillInputs in =
        PrefillInputs.of(p.rendered(), cfg, reference.runner(), reference.visionEncoder().get());
    ContiguousKv kv = new ContiguousKv(cfg, p.ids().length);
    reference.runner().forward(List.of(in.step(kv, true)), reference.experts());
    return read(kv, p.ids().length);
  }

  static int referenceFirstToken(ImagePrompt p) {
    return reference.generate(
            new GenerateRequest("reference", p.source(), SamplingParams.greedy(1), false))
        .tokenIds()[0];
  }

  /** Asserts the request's pushed KV and first token are the reference's; frees the KV. */
  void assertMatchesReference(Reserved r, ImagePrompt p, PrefillResult result) {
    assertEquals(
        referenceFirstToken(p),
        result.firstToken(),
        r.requestId() + ": first token differs from the reference engine's first greedy token");
    float[][][] expected = referenceKv(p);
    PagedSequenceKv kv = PagedSequenceKv.adopt(decodePool, r.blocks(), r.prompt().length);
    float[][][] pushed;
    try {
      pushed = read(kv, r.prompt().length);
    } finally {
      kv.release();
    }
    for (int layer = 0; layer < cfg.numLayers(); layer++) {
      assertArrayEquals(
          expected[layer][0], pushed[layer][0], r.requestId() + ": K of layer " + layer);
      assertArrayEquals(
          expected[layer][1], pushed[layer][1], r.requestId() + ": V of layer " + layer);
    }
  }

  /** Image placeholders plus each image's start and end token: the prompt's vision tokens. */
  static int visionTokens(ImagePrompt p) {
    return p.rendered().images().stream().mapToInt(s -> s.tokens() + 2).sum();
  }

  @Test
  void aPromptWithOneImagePushesTheReferenceKvAndFirstToken() throws Exception {
    start(PrefillOptions.defaults(), null);
    ImagePrompt p = ImagePrompt.of(reference, "What is in " + ImagePrompt.IMAGE + "?", SQUARE);
    Reserved r = submit("one", p);
    assertMatchesReference(r, p, await(r));
    assertEquals(1, metrics.imagesEncoded.get(), "the image went through the encoder");
    assertEquals(0, metrics.encoderCacheHits.get());
    assertEquals(
        visionTokens(p), metrics.visionTokens.get(), "the image's tokens took the vision experts");
  }

  @Test
  void aPromptWithTwoImagesPushesTheReferenceKvAndFirstToken() throws Exception {
    start(PrefillOptions.defaults(), null);
    ImagePrompt p =
        ImagePrompt.of(
            reference,
            "Compare " + ImagePrompt.IMAGE + " with " + ImagePrompt.IMAGE + ".",
            SQUARE,
            WIDE);
    Reserved r = submit("two", p);
    assertMatchesReference(r, p, await(r));
    assertEquals(2, metrics.imagesEncoded.get());
    assertEquals(visionTokens(p), metrics.visionTokens.get());
  }

  @Test
  void chunksThatSplitAnImagesPlaceholdersPushTheSameKvAsOnePass() throws Exception {
    start(new PrefillOptions(8, 8), null);
    ImagePrompt p =
        ImagePrompt.of(reference, "A picture: " + ImagePrompt.IMAGE + " and text after it.", WIDE);
    ImageSpan span = p.rendered().images().get(0);
    assertTrue(
        span.start() % 8 != 0 && span.tokens() > 8,
        "the image's 32 placeholders start inside a chunk and span several");
    Reserved r = submit("chunked", p);
    assertMatchesReference(r, p, await(r));
    int expectedSteps = (p.ids().length + 7) / 8;
    assertEquals(expectedSteps, metrics.steps().size(), "computed 8 tokens a step");
  }

  @Test
  void theSameImageTwiceIsEncodedOnceAndBothPromptsPushTheReferenceKv() throws Exception {
    start(PrefillOptions.defaults(), null);
    ImagePrompt first = ImagePrompt.of(reference, "Look: " + ImagePrompt.IMAGE, WIDE);
    ImagePrompt second = ImagePrompt.of(reference, "Again, " + ImagePrompt.IMAGE + "?", WIDE);
    Reserved r1 = submit("first", first);
    assertMatchesReference(r1, first, await(r1));
    Reserved r2 = submit("second", second);
    assertMatchesReference(r2, second, await(r2));
    assertEquals(1, metrics.imagesEncoded.get(), "the image went through the encoder once");
    assertEquals(1, metrics.encoderCacheHits.get(), "the second prompt found it in the cache");
    assertEquals(1, cache.hits());
    assertEquals(1, cache.misses());
  }

  @Test
  void thePrefixCacheSharesKvForTheSameImageAndNeverForAnotherWithTheSameText() throws Exception {
    int bs = prefillPool.layout().blockSize();
    start(PrefillOptions.defaults(), PrefixHasher.text(cfg.name(), bs));
    String text = "x" + ImagePrompt.IMAGE + " then a long enough text to fill more blocks";
    ImagePrompt a = ImagePrompt.of(reference, text, WIDE);
    ImagePrompt b = ImagePrompt.of(reference, text, OTHER_WIDE);
    ImagePrompt again = ImagePrompt.of(reference, text, WIDE);
    assertArrayEquals(a.ids(), b.ids(), "the two images' prompts have the same token ids");
    assertTrue(a.rendered().images().get(0).start() < bs, "the first block holds the image");

    Reserved ra = submit("a", a);
    PrefillResult pa = await(ra);
    assertMatchesReference(ra, a, pa);
    Reserved rb = submit("b", b);
    PrefillResult pb = await(rb);
    assertEquals(0, pb.cachedTokens(), "another image with the same text shares no KV");
    assertMatchesReference(rb, b, pb);
    Reserved rc = submit("again", again);
    PrefillResult pc = await(rc);
    assertEquals(
        (again.ids().length - 1) / bs * bs,
        pc.cachedTokens(),
        "the same image shares every full block but the last token's");
    assertMatchesReference(rc, again, pc);
  }

  @Test
  void aBrokenImageFailsWithInvalidArgumentNamingItAndHoldsNothing() throws Exception {
    start(PrefillOptions.defaults(), null);
    ImagePrompt p = ImagePrompt.of(reference, "see " + ImagePrompt.IMAGE, SQUARE);
    PromptImage good = p.images().get(0);
    PromptImage broken =
        new PromptImage(
            new EncodedImage("not an image at all".getBytes()),
            "image/png",
            null,
            good.placeholderStart(),
            good.gridH(),
            good.gridW());
    Reserved r = submit("broken", p.ids(), List.of(broken));
    ServingException e = failure(r.result());
    assertEquals(ServingException.Kind.INVALID_ARGUMENT, e.kind(), e.toString());
    assertTrue(
        e.getMessage().startsWith("request broken: images[0]: not a PNG or JPEG image"),
        e.getMessage());
    assertEquals(0, decode.opened(), "no KV push was opened");
    assertEquals(0, engine.stats().queuedJobs(), "the job is gone");
    assertEquals(0, engine.stats().queuedPromptTokens());
    dropReservation(r);
  }

  @Test
  void anImageWhoseGridIsNotTheOneGivenIsRefused() throws Exception {
    start(PrefillOptions.defaults(), null);
    // The square's ids, with the wide image (another grid) claiming the square's 2 x 2
    // placeholders.
    ImagePrompt p = ImagePrompt.of(reference, "see " + ImagePrompt.IMAGE, SQUARE);
    PromptImage claimed = p.images().get(0);
    PromptImage lying = new PromptImage(WIDE, "image/png", null, claimed.placeholderStart(), 2, 2);
    Reserved r = submit("lying", p.ids(), List.of(lying));
    ServingException e = failure(r.result());
    assertEquals(ServingException.Kind.INVALID_ARGUMENT, e.kind(), e.toString());
    assertEquals(
        "request lying: images[0]: the image preprocesses to a 4x8 merged grid, the request says"
            + " 2x2",
        e.getMessage());
    dropReservation(r);
  }

  @Test
  void anEngineWithoutAVisionEncoderRefusesImages() throws Exception {
    engine =
        new PrefillEngine(
            PrefillEngineSettings.builder(
                    runner, new LocalExperts(experts), prefillPool, decode, model.tokenizer())
                .build());
    ImagePrompt p = ImagePrompt.of(reference, "see " + ImagePrompt.IMAGE, SQUARE);
    ServingException e = failure(engine.submit(job("no-vision", p.ids(), p.images())));
    assertEquals(ServingException.Kind.INVALID_ARGUMENT, e.kind(), e.toString());
    assertTrue(e.getMessage().contains("runs without a vision encoder"), e.getMessage());
  }
}
