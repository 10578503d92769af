package dev.pdserve.decode;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.sampling.SamplingParams;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * What a router does when a request's decode node is lost: on another decode node it reserves KV
 * for the prompt and every delivered token but the last, has that KV computed again — by a prefill
 * node (a prefill of the prompt plus those tokens, pushed) or by the decode node itself (a local
 * prefill into the resume) — and resumes with the delivered tokens. Sampling is a function of the
 * seed and the history, so the rest equals what the single-process engine generates, greedy or
 * seeded.
 */
class RePrefillResumeTest {
  private static final int MAX_TOKENS = 20;
  private static final int DELIVERED = 7;

  static TinyModel model;

  RootAllocator allocator;
  TestDecodeNode node;
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
    node =
        new TestDecodeNode(
            "decode-b",
            allocator,
            model,
            model.reference.experts(),
            new DecodeOptions(
                8, Duration.ofSeconds(5), Duration.ofSeconds(30), Duration.ofSeconds(10)));
    KvLayout layout = KvLayout.of(model.reference.config());
    prefillPool = new KvBlockPool(allocator, "prefill-kv", layout, 64L * layout.blockBytes());
  }

  @AfterEach
  void stop() {
    node.close(); // checks every block of its pool is free
    prefillPool.close();
    allocator.close();
  }

  @Test
  void aGreedySequenceResumedWithLocalPrefillContinuesExactly() {
    resumeAndCompare(greedy(), true);
    assertEquals(1, node.engine.localPrefills(), "the decode node computed the KV itself");
  }

  @Test
  void aSeededSampledSequenceResumedWithLocalPrefillContinuesExactly() {
    resumeAndCompare(seeded(), true);
  }

  @Test
  void aSeededSampledSequenceResumedFromAPrefillNodesPushContinuesExactly() {
    resumeAndCompare(seeded(), false);
    assertEquals(0, node.engine.localPrefills(), "the KV was pushed");
  }

  @Test
  void aSequenceWhoseLastDeliveredTokenFinishedItEndsAtOnceWithoutOutput() {
    int[] prompt = model.prompt("its completion was lost with its node");
    int[] all = model.referenceTokens(prompt, MAX_TOKENS); // every token, the last one included
    Reservation r = node.engine.reserve("done", prompt.length + MAX_TOKENS - 1, 1);
    RecordingSink sink = new RecordingSink();
    node.engine.resume(
        JoinRequest.localPrefill("done", r.transferId(), prompt, greedy(), 1), all, sink);
    assertEquals("length", sink.awaitFinish().finish().wireName());
    assertArrayEquals(new int[0], sink.tokenIds(), "nothing is sent twice");
    assertEquals(0, node.engine.localPrefills(), "nothing to compute");
  }

  private void resumeAndCompare(SamplingParams params, boolean localPrefill) {
    int[] prompt = model.prompt("the decode node holding this died mid-stream");
    int[] expected =
        model
            .reference
            .generate(new GenerateRequest("reference", Prompt.tokens(prompt), params, false))
            .tokenIds();
    int[] delivered = Arrays.copyOf(expected, DELIVERED);
    int kvTokens = prompt.length + DELIVERED - 1;
    Reservation r = node.engine.reserve("r", kvTokens, MAX_TOKENS - DELIVERED + 1);
    long seed = params.seed().orElseThrow();
    if (!localPrefill) {
      int[] context = Arrays.copyOf(prompt, kvTokens);
      System.arraycopy(delivered, 0, context, prompt.length, DELIVERED - 1);
      model.prefillAndPush(
          context, params, prefillPool, node.transfer, node.endpoint(), r.transferId());
    }
    RecordingSink sink = new RecordingSink();
    node.engine.resume(
        new JoinRequest(
            "r",
            r.transferId(),
            prompt,
            delivered[0],
            0,
            params,
            seed,
            0,
            localPrefill,
            0,
            List.of()),
        delivered,
        sink);
    assertEquals("length", sink.awaitFinish().finish().wireName());
    assertArrayEquals(
        Arrays.copyOfRange(expected, DELIVERED, expected.length),
        sink.tokenIds(),
        "the tokens after the delivered ones are the reference engine's");
  }

  private static SamplingParams greedy() {
    return SamplingParams.builder()
        .temperature(0)
        .maxTokens(MAX_TOKENS)
        .ignoreEos(true)
        .seed(1)
        .build();
  }

  private static SamplingParams seeded() {
    return SamplingParams.builder()
        .temperature(0.9)
        .topP(0.95)
        .maxTokens(MAX_TOKENS)
        .ignoreEos(true)
        .seed(4242)
        .build();
  }
}
