package dev.pdserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.ConfigException;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelConfigJson;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.WeightComponent;
import dev.pdserve.model.quant.WeightQuantization;
import dev.pdserve.model.weights.ModelWeights;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The reference engine with quantized weights (MatMulNBits in the layer, head and expert graphs):
 * deterministic, not fp32, a chunked prefill equals one whole prefill, and a sequence decoded in a
 * batch with others gets the same logits, bit for bit, as decoded alone (DESIGN.md's batch
 * invariance, which the topology tests build on).
 */
class ReferenceEngineQuantizedTest {
  static LoadedModel model;
  static final Map<QuantMode, ReferenceEngine> engines = new EnumMap<>(QuantMode.class);

  @BeforeAll
  static void setUp() {
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    for (QuantMode m : QuantMode.values()) {
      engines.put(
          m,
          new ReferenceEngine(
              model, OrtRuntime.shared(), Numerics.weights(WeightQuantization.of(m))));
    }
  }

  @AfterAll
  static void tearDown() {
    engines.values().forEach(ReferenceEngine::close);
    model.close();
  }

  @ParameterizedTest
  @EnumSource(
      value = QuantMode.class,
      names = {"INT8", "INT4", "INT2_MIXED"})
  void chunkedPrefillEqualsWholeAndDiffersFromFp32(QuantMode mode) {
    ReferenceEngine e = engines.get(mode);
    int[] p = ReferenceEngineKvDtypeTest.prompt(45);
    var whole = ReferenceEngineKvDtypeTest.run(e, p, new int[] {45}, 8);
    var chunked = ReferenceEngineKvDtypeTest.run(e, p, new int[] {16, 17, 45}, 8);
    assertArrayEquals(whole.prefillLogits(), chunked.prefillLogits(), mode + " prefill logits");
    assertArrayEquals(whole.tokens(), chunked.tokens(), mode + " decoded tokens");
    var fp32 = ReferenceEngineKvDtypeTest.run(engines.get(QuantMode.NONE), p, new int[] {45}, 0);
    assertFalse(
        Arrays.equals(fp32.prefillLogits(), whole.prefillLogits()),
        mode + " gave exactly the fp32 logits: the quantization is not applied");
    assertEquals(WeightQuantization.of(mode), e.runner().numerics().weights());
  }

  @ParameterizedTest
  @EnumSource(
      value = QuantMode.class,
      names = {"INT8", "INT4", "INT2_MIXED"})
  void aSequenceDecodesTheSameInABatchAsAlone(QuantMode mode) {
    ReferenceEngine e = engines.get(mode);
    ModelRunner runner = e.runner();
    int[][] prompts = {
      ReferenceEngineKvDtypeTest.prompt(9), ReferenceEngineKvDtypeTest.prompt(23), {40, 41, 42}
    };
    List<ContiguousKv> kvs = new ArrayList<>();
    List<float[]> alone = new ArrayList<>();
    for (int[] p : prompts) {
      ContiguousKv kv = new ContiguousKv(e.config(), 8);
      runner.forward(List.of(SequenceStep.text(p, kv, true)), e.experts());
      kvs.add(kv);
      ContiguousKv solo = new ContiguousKv(e.config(), 8);
      runner.forward(List.of(SequenceStep.text(p, solo, true)), e.experts());
      alone.add(
          runner.forward(List.of(SequenceStep.text(new int[] {77}, solo, true)), e.experts())[0]);
    }
    List<SequenceStep> batch = new ArrayList<>();
    for (ContiguousKv kv : kvs) {
      batch.add(SequenceStep.text(new int[] {77}, kv, true));
    }
    float[][] together = runner.forward(batch, e.experts());
    for (int i = 0; i < prompts.length; i++) {
      assertArrayEquals(
          alone.get(i), together[i], mode + ": sequence " + i + " decoded in a batch of 3");
    }
  }

  @Test
  void int2MixedKeepsTheFirstMoeLayersAtFourBitsAndDensePartsAtEight() {
    ModelConfig cfg = model.config();
    WeightQuantization q = WeightQuantization.of(QuantMode.INT2_MIXED);
    assertEquals(1, WeightQuantization.fourBitMoeLayers(cfg));
    assertEquals(4, q.bits(cfg, 1, WeightComponent.ROUTED_EXPERTS));
    assertEquals(2, q.bits(cfg, 2, WeightComponent.ROUTED_EXPERTS));
    assertEquals(2, q.bits(cfg, 3, WeightComponent.ROUTED_EXPERTS));
    for (WeightComponent c :
        List.of(
            WeightComponent.ATTENTION,
            WeightComponent.SHARED_EXPERTS,
            WeightComponent.DENSE_MLP,
            WeightComponent.LM_HEAD)) {
      assertEquals(8, q.bits(cfg, 2, c), c.name());
    }
    // int4 at block 64: per 64 values 32 bytes of codes, a 4-byte scale and half a byte of zp
    WeightQuantization int4 = WeightQuantization.of(QuantMode.INT4);
    assertEquals(
        1536L * (4 * 32 + 4 * 4 + 2),
        int4.bytes(cfg, 1, WeightComponent.ROUTED_EXPERTS, 256, 1536));
    assertEquals(
        4.0, WeightQuantization.NONE.bytesPerWeight(cfg, 1, WeightComponent.LM_HEAD, 8, 8));
    assertTrue(int4.bytesPerWeight(cfg, 1, WeightComponent.ATTENTION, 256, 64) < 0.6);
  }

  @Test
  void badSettingsAreRefusedNamingTheChoices() {
    var e = assertThrows(IllegalArgumentException.class, () -> QuantMode.parse("int3"));
    assertTrue(e.getMessage().contains("none, int8, int4 or int2-mixed"), e.getMessage());
    assertEquals(QuantMode.INT2_MIXED, QuantMode.parse("INT2-mixed"));
    for (int bad : new int[] {8, 48, 512, 0}) {
      var b =
          assertThrows(
              IllegalArgumentException.class,
              () -> new WeightQuantization(QuantMode.INT4, bad),
              "block " + bad);
      assertTrue(b.getMessage().contains("power of two"), b.getMessage());
    }
    var pre =
        assertThrows(
            ConfigException.class,
            () ->
                ModelConfigJson.parse(
                    "{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4}}",
                    "ckpt/config.json"));
    assertTrue(
        pre.getMessage().contains("ckpt/config.json declares quantization_config")
            && pre.getMessage().contains("pdserve.model.quantization"),
        pre.getMessage());
    try (ModelWeights fp32 =
        new ModelWeights(model.config(), model.weights(), OrtRuntime.shared())) {
      var m =
          assertThrows(
              IllegalArgumentException.class,
              () ->
                  new ModelRunner(
                      model.config(),
                      fp32,
                      OrtRuntime.shared(),
                      Numerics.weights(WeightQuantization.of(QuantMode.INT4))));
      assertTrue(m.getMessage().contains("int4"), m.getMessage());
    }
  }

  /**
   * A 1010-token prompt prefilled in 128-token chunks (as a prefill node does) decodes the same
   * logits, bit for bit, as prefilled whole, with the embeddings quantized and fp32. In int4 this
   * needs {@link WeightQuantization#paddedRows} to avoid 129 rows: an expert that gets 129 of the
   * whole prompt's rows otherwise computes the last one along another path.
   */
  @ParameterizedTest
  @EnumSource(
      value = QuantMode.class,
      names = {"INT8", "INT4", "INT2_MIXED"})
  void aLongPromptPrefilledInChunksDecodesAsPrefilledWhole(QuantMode mode) {
    StringBuilder text = new StringBuilder();
    while (text.length() < 1100) {
      text.append("pdserve moves KV over Arrow Flight. ");
    }
    for (boolean embeddings : new boolean[] {true, false}) {
      WeightQuantization q = WeightQuantization.of(mode).withQuantizedEmbeddings(embeddings);
      try (ReferenceEngine e =
          new ReferenceEngine(model, OrtRuntime.shared(), Numerics.weights(q))) {
        int[] prompt =
            e.renderer().renderWithImages(new Prompt.Text(text.substring(0, 1010)), true).ids();
        int[] cuts = new int[(prompt.length + 127) / 128];
        for (int i = 0; i < cuts.length; i++) {
          cuts[i] = Math.min(prompt.length, 128 * (i + 1));
        }
        float[][] whole = decodeLogits(e, prompt, new int[] {prompt.length}, 8);
        float[][] chunked = decodeLogits(e, prompt, cuts, 8);
        for (int s = 0; s < whole.length; s++) {
          assertArrayEquals(whole[s], chunked[s], q.describe() + ": logits of step " + s);
        }
      }
    }
  }

  /** The logits of the prefill (prefilled to {@code cuts}) and of {@code steps} greedy steps. */
  private static float[][] decodeLogits(ReferenceEngine e, int[] prompt, int[] cuts, int steps) {
    ContiguousKv kv = new ContiguousKv(e.config(), 8);
    float[][] out = new float[steps + 1][];
    int from = 0;
    for (int cut : cuts) {
      int[] part = Arrays.copyOfRange(prompt, from, cut);
      out[0] =
          e.runner()
              .forward(List.of(SequenceStep.text(part, kv, cut == prompt.length)), e.experts())[0];
      from = cut;
    }
    for (int s = 0; s < steps; s++) {
      int t = dev.pdserve.model.sampling.Sampler.argmax(out[s]);
      out[s + 1] =
          e.runner().forward(List.of(SequenceStep.text(new int[] {t}, kv, true)), e.experts())[0];
    }
    return out;
  }
}
