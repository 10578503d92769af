package dev.pdserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.sampling.Sampler;
import dev.pdserve.model.sampling.SamplingParams;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The reference engine with a half-precision KV cache: deterministic, different from fp32, and a
 * prompt prefilled in chunks (each chunk attending to the cached, already rounded keys of the ones
 * before) gives bit for bit the logits and the tokens of one whole prefill in the same mode — the
 * reason a chunking prefill node and a decode node reading 2-byte KV match the reference.
 */
class ReferenceEngineKvDtypeTest {
  static LoadedModel model;
  static final Map<KvDtype, ReferenceEngine> engines = new EnumMap<>(KvDtype.class);

  @BeforeAll
  static void setUp() {
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    for (KvDtype d : KvDtype.values()) {
      engines.put(d, new ReferenceEngine(model, OrtRuntime.shared(), Numerics.kv(d)));
    }
  }

  @AfterAll
  static void tearDown() {
    engines.values().forEach(ReferenceEngine::close);
    model.close();
  }

  static int[] prompt(int n) {
    Random r = new Random(17);
    int[] t = new int[n];
    for (int i = 0; i < n; i++) {
      t[i] = 32 + r.nextInt(200);
    }
    return t;
  }

  static SamplingParams greedy(int maxTokens) {
    return SamplingParams.builder().temperature(0).maxTokens(maxTokens).ignoreEos(true).build();
  }

  /** Prefills {@code prompt} in pieces ending at {@code cuts}, then decodes greedily. */
  static Run run(ReferenceEngine e, int[] prompt, int[] cuts, int steps) {
    ModelRunner runner = e.runner();
    ContiguousKv kv = new ContiguousKv(e.config(), 8);
    float[] logits = null;
    int from = 0;
    for (int cut : cuts) {
      int[] part = Arrays.copyOfRange(prompt, from, cut);
      logits =
          runner
              .forward(List.of(SequenceStep.text(part, kv, cut == prompt.length)), e.experts())[0];
      from = cut;
    }
    float[] prefillLogits = logits;
    int[] tokens = new int[steps];
    for (int s = 0; s < steps; s++) {
      tokens[s] = Sampler.argmax(logits);
      logits =
          runner
              .forward(List.of(SequenceStep.text(new int[] {tokens[s]}, kv, true)), e.experts())[0];
    }
    return new Run(prefillLogits, tokens);
  }

  record Run(float[] prefillLogits, int[] tokens) {}

  @ParameterizedTest
  @EnumSource(
      value = KvDtype.class,
      names = {"FP16", "BF16"})
  void chunkedPrefillThenDecodeEqualsOneWholePrefillInTheSameMode(KvDtype dtype) {
    ReferenceEngine e = engines.get(dtype);
    int[] p = prompt(45);
    Run whole = run(e, p, new int[] {45}, 10);
    Run chunked = run(e, p, new int[] {16, 17, 45}, 10); // 3 chunks, one of a single token
    assertArrayEquals(
        whole.prefillLogits(),
        chunked.prefillLogits(),
        dtype + ": logits after a 3-chunk prefill differ from one whole prefill");
    assertArrayEquals(
        whole.tokens(),
        chunked.tokens(),
        dtype + ": decoded tokens differ after a chunked prefill");

    GenerateResult g = e.generate(new GenerateRequest("g", Prompt.tokens(p), greedy(11), true));
    assertArrayEquals(
        whole.tokens(),
        Arrays.copyOf(g.tokenIds(), 10),
        dtype + ": generate() differs from the runner's own prefill and decode");
  }

  @ParameterizedTest
  @EnumSource(
      value = KvDtype.class,
      names = {"FP16", "BF16"})
  void halfKvIsDeterministicAndNotFp32(KvDtype dtype) {
    GenerateRequest r =
        new GenerateRequest("d", Prompt.text("The quick brown fox"), greedy(16), true);
    GenerateResult a = engines.get(dtype).generate(r);
    GenerateResult b = engines.get(dtype).generate(r);
    assertArrayEquals(a.tokenIds(), b.tokenIds(), dtype + ": two greedy runs differ");
    assertEquals(16, a.completionTokens());

    int[] p = prompt(30);
    float[] half = run(engines.get(dtype), p, new int[] {30}, 0).prefillLogits();
    float[] full = run(engines.get(KvDtype.FP32), p, new int[] {30}, 0).prefillLogits();
    assertFalse(
        Arrays.equals(half, full),
        dtype + " KV gave exactly the fp32 logits: the KV dtype is not applied");
    assertEquals(KvDtype.FP32, engines.get(KvDtype.FP32).runner().numerics().kvDtype());
    assertEquals(dtype, engines.get(dtype).runner().numerics().kvDtype());
  }
}
