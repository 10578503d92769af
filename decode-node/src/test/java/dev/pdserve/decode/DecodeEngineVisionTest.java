package dev.pdserve.decode;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.coordination.DrainReport;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.vision.EncodedImage;
import dev.pdserve.model.vision.PromptImage;
import dev.pdserve.model.vision.TestImages;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The decode engine with prompts with images (the tiny VL model, real ORT sessions): a sequence's
 * 3-D rotary delta drives its decode positions, a local prefill encodes its images itself, a drain
 * moves an image sequence with its delta, and a broken image is refused with nothing held. Every
 * stream is held to the reference engine's greedy tokens.
 */
class DecodeEngineVisionTest {
  static final DecodeOptions OPTIONS =
      new DecodeOptions(8, Duration.ofSeconds(5), Duration.ofSeconds(30), Duration.ofSeconds(10));
  static final int MAX_TOKENS = 24;

  // 224 x 112 pixels: 4 rows x 8 columns = 32 image tokens, delta 8 - 32 = -24.
  static final EncodedImage WIDE = TestImages.png(224, 112, 2);
  static final EncodedImage SQUARE = TestImages.png(56, 56, 1);

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

  ImagePrompt described() {
    return model.imagePrompt("Describe " + ImagePrompt.IMAGE + " in a few words.", WIDE);
  }

  @Test
  void aSequenceJoinedWithItsPositionDeltaDecodesTheReferenceTokens() {
    ImagePrompt p = described();
    assertEquals(-24, p.positionDelta(), "a 4 x 8 image takes 8 positions for 32 tokens");
    int[] expected = model.referenceTokens(p, MAX_TOKENS);
    RecordingSink sink = a.joinPrefilledElsewhere(model, prefillPool, "img", p, MAX_TOKENS);
    assertEquals("length", sink.awaitFinish().finish().wireName());
    assertArrayEquals(expected, sink.tokenIds(), "the image prompt's greedy stream");

    // The same KV decoded at text positions (delta 0) is another stream: the delta is needed.
    Reservation r = a.engine.reserve("no-delta", p.ids().length, MAX_TOKENS);
    int first =
        model.prefillAndPush(
            p, TinyModel.greedy(MAX_TOKENS), prefillPool, a.transfer, a.endpoint(), r.transferId());
    RecordingSink wrong = new RecordingSink();
    a.engine.join(
        JoinRequest.prefilled(
            "no-delta", r.transferId(), p.ids(), first, 0, TinyModel.greedy(MAX_TOKENS), 1, 0),
        wrong);
    wrong.awaitFinish();
    assertFalse(
        Arrays.equals(expected, wrong.tokenIds()),
        "decoding an image prompt at text positions should not match the reference");
  }

  @Test
  void aLocalPrefillEncodesItsImagesAndDecodesTheReferenceTokens() {
    ImagePrompt p = described();
    int[] expected = model.referenceTokens(p, MAX_TOKENS);
    for (String id : List.of("local-1", "local-2")) {
      Reservation r = a.engine.reserve(id, p.ids().length, MAX_TOKENS);
      RecordingSink sink = new RecordingSink();
      a.engine.join(
          JoinRequest.localPrefill(id, r.transferId(), p.ids(), TinyModel.greedy(MAX_TOKENS), 1)
              .withImages(p.images()),
          sink);
      assertEquals("length", sink.awaitFinish().finish().wireName());
      assertArrayEquals(expected, sink.tokenIds(), id + ": the local prefill's stream");
    }
    assertEquals(2, a.engine.localPrefills());
    assertEquals(1, a.encoderCache.misses(), "the image went through the encoder once");
    assertEquals(1, a.encoderCache.hits(), "the second local prefill took it from the cache");
  }

  @Test
  void aBrokenImageInALocalPrefillFailsWithInvalidArgumentAndFreesItsKv() {
    ImagePrompt p = model.imagePrompt("see " + ImagePrompt.IMAGE, SQUARE);
    PromptImage good = p.images().get(0);
    PromptImage truncated =
        new PromptImage(
            new EncodedImage(Arrays.copyOf(SQUARE.bytes(), 40)),
            "image/png",
            null,
            good.placeholderStart(),
            good.gridH(),
            good.gridW());
    Reservation r = a.engine.reserve("broken", p.ids().length, 4);
    RecordingSink sink = new RecordingSink();
    a.engine.join(
        JoinRequest.localPrefill("broken", r.transferId(), p.ids(), TinyModel.greedy(4), 1)
            .withImages(List.of(truncated)),
        sink);
    Throwable e = sink.awaitError();
    assertTrue(e instanceof ServingException, e.toString());
    assertEquals(ServingException.Kind.INVALID_ARGUMENT, ((ServingException) e).kind());
    assertTrue(
        e.getMessage().startsWith("request broken: images[0]: PNG image is "), e.getMessage());
    assertEquals(0, a.engine.reservedBlocks(), "its reservation is freed");
    assertEquals(a.pool.totalBlocks(), a.pool.freeBlocks(), "every block is back");
    assertEquals(0, a.engine.localPrefills());
  }

  @Test
  void placeholdersThatDoNotMatchTheImagesAreRefusedBeforeAnythingIsComputed() {
    ImagePrompt p = model.imagePrompt("see " + ImagePrompt.IMAGE, SQUARE);
    Reservation r = a.engine.reserve("no-images", p.ids().length, 4);
    RecordingSink sink = new RecordingSink();
    PromptImage given = p.images().get(0);
    PromptImage shifted = // one token early: its first "placeholder" is the start token
        new PromptImage(
            given.image(), "", null, given.placeholderStart() - 1, given.gridH(), given.gridW());
    a.engine.join(
        JoinRequest.localPrefill("no-images", r.transferId(), p.ids(), TinyModel.greedy(4), 1)
            .withImages(List.of(shifted)),
        sink);
    Throwable e = sink.awaitError();
    assertEquals(ServingException.Kind.INVALID_ARGUMENT, ((ServingException) e).kind());
    assertTrue(e.getMessage().startsWith("request no-images: images[0]: "), e.getMessage());
    assertEquals(0, a.engine.reservedBlocks());
    assertEquals(0, a.encoderCache.misses() + a.encoderCache.hits(), "nothing was encoded");
  }

  @Test
  void aPositionDeltaOutOfRangeIsRefused() {
    int[] prompt = model.prompt("four");
    IllegalArgumentException positive =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                JoinRequest.localPrefill("d", "t", prompt, TinyModel.greedy(1), 1)
                    .withPositionDelta(1));
    assertEquals(
        "position_delta of request d must be in -3..0 for its 4 prompt tokens, got 1",
        positive.getMessage());
    assertThrows(
        IllegalArgumentException.class,
        () ->
            JoinRequest.localPrefill("d", "t", prompt, TinyModel.greedy(1), 1)
                .withPositionDelta(-4));

    Reservation r = a.engine.reserve("text-delta", prompt.length, 4);
    RecordingSink sink = new RecordingSink();
    a.engine.join(
        JoinRequest.localPrefill("text-delta", r.transferId(), prompt, TinyModel.greedy(4), 1)
            .withPositionDelta(-2),
        sink);
    Throwable e = sink.awaitError();
    assertEquals(ServingException.Kind.INVALID_ARGUMENT, ((ServingException) e).kind());
    assertEquals("request text-delta: a text prompt has position_delta 0, got -2", e.getMessage());
    assertEquals(0, a.engine.reservedBlocks());
  }

  /** Reservations on node b, for a's drain. */
  private final class TargetsOnB implements MigrationTargets {
    @Override
    public Optional<MigrationTarget> reserve(String requestId, int kvTokens, int maxNewTokens) {
      Reservation r = b.engine.reserve(requestId, kvTokens, maxNewTokens);
      return Optional.of(new MigrationTarget(b.name, "in-process:b", r.transferId(), b.endpoint()));
    }

    @Override
    public void release(MigrationTarget target) {
      b.engine.release(target.transferId());
    }
  }

  @Test
  void anImageSequenceMigratesWithItsDeltaAndContinuesExactlyOnAnotherEngine() {
    ImagePrompt p = described();
    int[] expected = model.referenceTokens(p, MAX_TOKENS);
    expertsA.shutAfter(3 * model.reference.config().numLayers()); // a few steps on a, then held
    RecordingSink onA = a.joinPrefilledElsewhere(model, prefillPool, "moving", p, MAX_TOKENS);
    RecordingSink.await(onA.tokensReached(2), "tokens on a before the drain");
    CompletableFuture<DrainReport> drain =
        CompletableFuture.supplyAsync(
            () -> a.engine.drain(new TargetsOnB(), b.transfer, Duration.ofMinutes(1)), drainThread);
    long guard = System.nanoTime() + TimeUnit.SECONDS.toNanos(60); // a hang guard only
    while (a.engine.accepting()) {
      assertTrue(System.nanoTime() < guard, "the drain did not start");
      Thread.onSpinWait();
    }
    expertsA.open();
    DrainReport report = RecordingSink.await(drain, "the drain to end");
    assertEquals(1, report.migrated(), report.toString());

    Migration m = onA.awaitMigration();
    assertEquals(p.positionDelta(), m.positionDelta(), "the delta travels with the sequence");
    assertArrayEquals(onA.tokenIds(), m.generatedIds());
    RecordingSink onB = new RecordingSink();
    b.engine.resume(
        JoinRequest.prefilled(
                "moving",
                m.target().transferId(),
                p.ids(),
                -1,
                0,
                TinyModel.greedy(MAX_TOKENS),
                1,
                0)
            .withPositionDelta(m.positionDelta()),
        m.generatedIds(),
        onB);
    assertEquals("length", onB.awaitFinish().finish().wireName());
    assertArrayEquals(
        expected,
        IntStream.concat(IntStream.of(onA.tokenIds()), IntStream.of(onB.tokenIds())).toArray(),
        "a's tokens then b's must be the reference's, none lost or repeated");
  }
}
