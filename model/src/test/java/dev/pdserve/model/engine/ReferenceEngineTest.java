package dev.pdserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.sampling.FinishReason;
import dev.pdserve.model.sampling.InvalidRequestException;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.tokenizer.ChatMessage;
import dev.pdserve.model.weights.CheckpointConverter;
import dev.pdserve.model.weights.ConvertOptions;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.FloatTensor;
import dev.pdserve.model.weights.HalfFloats;
import dev.pdserve.model.weights.SafetensorsDType;
import dev.pdserve.model.weights.TestCheckpoints;
import dev.pdserve.model.weights.WeightSource;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ReferenceEngineTest {
  static LoadedModel model;
  static ReferenceEngine engine;

  @BeforeAll
  static void setUp() {
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    engine = new ReferenceEngine(model, OrtRuntime.shared());
  }

  @AfterAll
  static void tearDown() {
    engine.close();
    model.close();
  }

  static GenerateRequest req(Prompt p, SamplingParams s) {
    return new GenerateRequest("test", p, s, true);
  }

  @Test
  void greedyChatGenerationIsDeterministicAndStreamsItsText() {
    StringBuilder streamed = new StringBuilder();
    GenerateRequest r = req(Prompt.user("Héllo, 世界! What is pdserve?"), SamplingParams.greedy(24));
    GenerateResult a = engine.generate(r, e -> streamed.append(e.text()));
    GenerateResult b = engine.generate(r);
    assertArrayEquals(a.tokenIds(), b.tokenIds());
    assertEquals(
        a.text(), streamed.toString(), "streamed deltas must concatenate to the final text");
    assertTrue(a.completionTokens() >= 1 && a.completionTokens() <= 24);
    if (a.finishReason() == FinishReason.LENGTH) {
      assertEquals(24, a.completionTokens());
    }
    assertTrue(a.promptTokens() > 10);
  }

  @Test
  void sameSeedSameTokensOtherSeedOtherTokens() {
    SamplingParams s1 =
        SamplingParams.builder().temperature(1.0).maxTokens(32).seed(1234).ignoreEos(true).build();
    SamplingParams s2 = s1.toBuilder().seed(99).build();
    Prompt p = Prompt.text("The quick brown fox");
    GenerateResult a = engine.generate(req(p, s1));
    GenerateResult b = engine.generate(req(p, s1));
    GenerateResult c = engine.generate(req(p, s2));
    assertArrayEquals(a.tokenIds(), b.tokenIds(), "the same seed must give the same tokens");
    assertNotEquals(List.of(a.tokenIds()), List.of(c.tokenIds()));
    assertFalse(
        Arrays.equals(a.tokenIds(), c.tokenIds()), "different seeds should give different tokens");
    assertEquals(32, a.completionTokens());
    assertEquals(FinishReason.LENGTH, a.finishReason());
  }

  private static void assertFalse(boolean b, String msg) {
    assertTrue(!b, msg);
  }

  @Test
  void thinkingModeChangesThePrompt() {
    List<ChatMessage> msgs = List.of(ChatMessage.system("be brief"), ChatMessage.user("hi"));
    int on = engine.renderer().render(new Prompt.Messages(msgs), true).length;
    int off = engine.renderer().render(new Prompt.Messages(msgs), false).length;
    assertTrue(off > on, "non-thinking mode appends an empty think block");
  }

  @Test
  void badInputGetsAClearError() {
    int ctx = engine.config().maxPositions();
    InvalidRequestException tooLong =
        assertThrows(
            InvalidRequestException.class,
            () -> engine.generate(req(Prompt.text("a".repeat(ctx + 5)), SamplingParams.greedy(4))));
    assertTrue(
        tooLong
            .getMessage()
            .startsWith("This model's maximum context length is " + ctx + " tokens"),
        tooLong.getMessage());
    assertMessage("max_tokens must be >= 1", SamplingParams.builder().maxTokens(0));
    assertMessage("temperature must be >= 0", SamplingParams.builder().temperature(-1));
    assertMessage("top_p must be in (0, 1]", SamplingParams.builder().topP(1.5));
    assertMessage("top_p must be in (0, 1]", SamplingParams.builder().topP(0));
    InvalidRequestException empty =
        assertThrows(
            InvalidRequestException.class,
            () -> engine.generate(req(Prompt.text(""), SamplingParams.greedy(4))));
    assertTrue(empty.getMessage().contains("prompt is empty"), empty.getMessage());
    InvalidRequestException badId =
        assertThrows(
            InvalidRequestException.class,
            () -> engine.generate(req(Prompt.tokens(5, 99999), SamplingParams.greedy(4))));
    assertTrue(
        badId.getMessage().contains("prompt_token_ids[1] = 99999 is outside the vocabulary"),
        badId.getMessage());
  }

  private static void assertMessage(String expected, SamplingParams.Builder b) {
    InvalidRequestException e =
        assertThrows(
            InvalidRequestException.class,
            () -> engine.generate(req(Prompt.text("hi"), b.build())));
    assertTrue(
        e.getMessage().startsWith(expected),
        "expected '" + expected + "...', got: " + e.getMessage());
  }

  @Test
  void stopStringEndsTheOutputBeforeIt(@TempDir Path unused) {
    GenerateResult free =
        engine.generate(
            req(
                Prompt.text("abc"),
                SamplingParams.builder().temperature(0).maxTokens(40).ignoreEos(true).build()));
    String text = free.text();
    // pick a stop string from the middle of what greedy produces anyway
    String stop = null;
    for (int i = 3; i + 2 < text.length(); i++) {
      String cand = text.substring(i, i + 2);
      if (!cand.contains("\uFFFD") && text.indexOf(cand) == i) {
        stop = cand;
        break;
      }
    }
    if (stop == null) {
      return; // output too short or too irregular to place a stop string; covered by StopChecker
      // tests
    }
    GenerateResult stopped =
        engine.generate(
            req(
                Prompt.text("abc"),
                SamplingParams.builder()
                    .temperature(0)
                    .maxTokens(40)
                    .ignoreEos(true)
                    .stop(stop)
                    .build()));
    assertEquals(FinishReason.STOP, stopped.finishReason());
    assertEquals(text.substring(0, text.indexOf(stop)), stopped.text());
    assertEquals(stop, stopped.stopReason());
  }

  @Test
  void checkpointOnDiskGeneratesTheSameTokensAsTheSameWeightsHandedOver(@TempDir Path tmp) {
    ModelConfig cfg = ModelPresets.get("tiny");
    DummyWeights direct = new DummyWeights(cfg, ModelSpec.DEFAULT_SEED);
    GenerateRequest r = req(Prompt.user("checkpoint parity"), SamplingParams.greedy(16));
    int[] expected = engine.generate(r).tokenIds();

    // fp32 release layout (VL gates transposed, extras), converted, then loaded
    Path released =
        TestCheckpoints.write(
            tmp.resolve("released"),
            cfg,
            direct,
            TestCheckpoints.Layout.released(cfg, SafetensorsDType.F32).withShards(2));
    Path converted = tmp.resolve("converted");
    CheckpointConverter.convert(released, converted, ConvertOptions.defaults());
    for (Path dir : List.of(released, converted)) {
      try (LoadedModel m = LoadedModel.load(ModelSpec.directory(dir));
          ReferenceEngine e = new ReferenceEngine(m, OrtRuntime.shared())) {
        assertArrayEquals(
            expected,
            e.generate(r).tokenIds(),
            "tokens from " + dir.getFileName() + " differ from direct weights");
      }
    }

    // bf16 checkpoint == the same weights rounded to bf16 handed over directly
    Path bf16 =
        TestCheckpoints.write(
            tmp.resolve("bf16"),
            cfg,
            direct,
            TestCheckpoints.Layout.released(cfg, SafetensorsDType.BF16));
    int[] fromDisk;
    try (LoadedModel m = LoadedModel.load(ModelSpec.directory(bf16));
        ReferenceEngine e = new ReferenceEngine(m, OrtRuntime.shared())) {
      fromDisk = e.generate(r).tokenIds();
    }
    LoadedModel rounded = LoadedModel.load(ModelSpec.preset("tiny"));
    try (ReferenceEngine e =
        new ReferenceEngine(withWeights(rounded, new Bf16Rounded(direct)), OrtRuntime.shared())) {
      assertArrayEquals(
          e.generate(r).tokenIds(),
          fromDisk,
          "bf16 checkpoint differs from the same bf16 weights in memory");
    }
  }

  private static LoadedModel withWeights(LoadedModel base, WeightSource w) {
    return LoadedModelAccess.with(base, w);
  }

  /** A weight source whose values are rounded through bf16, as a bf16 checkpoint stores them. */
  static final class Bf16Rounded implements WeightSource {
    private final WeightSource inner;

    Bf16Rounded(WeightSource inner) {
      this.inner = inner;
    }

    @Override
    public Optional<FloatTensor> find(String name) {
      return inner
          .find(name)
          .map(
              t -> {
                FloatBuffer out =
                    ByteBuffer.allocateDirect((int) t.elements() * 4)
                        .order(ByteOrder.nativeOrder())
                        .asFloatBuffer();
                for (int i = 0; i < t.elements(); i++) {
                  out.put(i, HalfFloats.bf16ToFloat(HalfFloats.floatToBf16(t.get(i)) & 0xffff));
                }
                return new FloatTensor(t.name(), t.shape(), out);
              });
    }

    @Override
    public Set<String> names() {
      return inner.names();
    }

    @Override
    public String describe() {
      return "bf16(" + inner.describe() + ")";
    }
  }
}
