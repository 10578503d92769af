package dev.pdserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import dev.pdserve.model.config.ConfigException;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.quant.QuantCompute;
import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.QuantNames;
import dev.pdserve.model.quant.StoredQuantization;
import dev.pdserve.model.quant.WeightQuantization;
import dev.pdserve.model.weights.CheckpointConverter;
import dev.pdserve.model.weights.ConvertOptions;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelDirectory;
import dev.pdserve.model.weights.ModelWeights;
import dev.pdserve.model.weights.QuantizedLayout;
import dev.pdserve.model.weights.SafetensorsDType;
import dev.pdserve.model.weights.TestCheckpoints;
import dev.pdserve.model.weights.WeightNames;
import java.io.IOException;
import java.nio.Buffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A checkpoint converted pre-quantized ({@code pdserve model convert --quantize}) serves exactly
 * what the fp32 checkpoint quantized on load serves in the same mode — the same logits bit for bit
 * and the same greedy tokens — with ONNX Runtime reading the stored codes from the file's mapping;
 * asking it for another mode or block size is refused naming the key and both values.
 */
class PrequantizedCheckpointTest {
  static final ModelConfig TINY = ModelPresets.get("tiny");
  static final QuantMode[] MODES = {QuantMode.INT8, QuantMode.INT4, QuantMode.INT2_MIXED};

  @TempDir static Path tmp;
  static Path fp32Dir;
  static final Map<QuantMode, Path> converted = new EnumMap<>(QuantMode.class);
  static LoadedModel fp32;
  static final Map<QuantMode, LoadedModel> stored = new EnumMap<>(QuantMode.class);

  @BeforeAll
  static void convert() {
    fp32Dir =
        TestCheckpoints.write(
            tmp.resolve("fp32"),
            TINY,
            new DummyWeights(TINY, 42),
            TestCheckpoints.Layout.canonical(SafetensorsDType.F32));
    fp32 = LoadedModel.load(ModelSpec.directory(fp32Dir));
    for (QuantMode m : MODES) {
      Path out = tmp.resolve(m.configName());
      CheckpointConverter.convert(
          fp32Dir, out, ConvertOptions.defaults().withQuantization(WeightQuantization.of(m)));
      converted.put(m, out);
      stored.put(m, LoadedModel.load(ModelSpec.directory(out)));
    }
  }

  @AfterAll
  static void close() {
    stored.values().forEach(LoadedModel::close);
    fp32.close();
  }

  @ParameterizedTest
  @EnumSource(
      value = QuantMode.class,
      names = {"INT8", "INT4", "INT2_MIXED"})
  void convertedCheckpointGivesTheTokensOfQuantizeOnLoad(QuantMode mode) {
    assertSameAsOnLoad(mode, WeightQuantization.of(mode));
  }

  @Test
  void int8ComputeOverStoredInt4EqualsInt8ComputeOnLoad() {
    assertSameAsOnLoad(
        QuantMode.INT4, WeightQuantization.of(QuantMode.INT4).withCompute(QuantCompute.INT8));
  }

  private static void assertSameAsOnLoad(QuantMode mode, WeightQuantization q) {
    int[] prompt = ReferenceEngineKvDtypeTest.prompt(37);
    try (ReferenceEngine onLoad =
            new ReferenceEngine(fp32, OrtRuntime.shared(), Numerics.weights(q));
        ReferenceEngine fromDisk =
            new ReferenceEngine(stored.get(mode), OrtRuntime.shared(), Numerics.weights(q))) {
      var a = ReferenceEngineKvDtypeTest.run(onLoad, prompt, new int[] {20, 37}, 10);
      var b = ReferenceEngineKvDtypeTest.run(fromDisk, prompt, new int[] {20, 37}, 10);
      assertArrayEquals(a.prefillLogits(), b.prefillLogits(), q.describe() + " prefill logits");
      assertArrayEquals(a.tokens(), b.tokens(), q.describe() + " greedy tokens");
      try (ReferenceEngine plain =
          new ReferenceEngine(fp32, OrtRuntime.shared(), Numerics.DEFAULT)) {
        var f = ReferenceEngineKvDtypeTest.run(plain, prompt, new int[] {37}, 0);
        assertFalse(
            java.util.Arrays.equals(f.prefillLogits(), b.prefillLogits()),
            q.describe() + " from disk gave the fp32 logits: the stored codes are not used");
      }
      GenerateRequest req =
          new GenerateRequest(
              "p", Prompt.text("The quick brown fox"), ReferenceEngineKvDtypeTest.greedy(6), true);
      assertArrayEquals(
          onLoad.generate(req).tokenIds(), fromDisk.generate(req).tokenIds(), "generate");
    }
  }

  @Test
  void storedMatricesReachOnnxRuntimeAsViewsOfTheMapping() {
    WeightQuantization q = WeightQuantization.of(QuantMode.INT4);
    LoadedModel m = stored.get(QuantMode.INT4);
    Map<String, QuantFormat> formats = QuantizedLayout.formats(TINY, q);
    try (ModelWeights w = new ModelWeights(TINY, m.weights(), OrtRuntime.shared(), q)) {
      assertTrue(w.storesQuantized());
      for (String base :
          new String[] {
            WeightNames.q(0), WeightNames.expert(TINY, 2, 1, 5, "down_proj"), WeightNames.EMBED
          }) {
        QuantFormat f = formats.get(base);
        for (String name :
            new String[] {
              QuantNames.codes(base, f), QuantNames.scales(base, f), QuantNames.zeroPoints(base, f)
            }) {
          OnnxTensor t = w.tensor(name);
          assertFalse(t.ownsBuffer(), name + " was copied");
          Buffer ref = t.getBufferRef().orElseThrow();
          assertTrue(ref.isDirect() && ref.isReadOnly(), name + " is not a view of the mapping");
        }
      }
      // and the experts' sessions run on them: nothing quantized, ONNX Runtime accepts the views
      try (ExpertCompute ec =
          new ExpertCompute(TINY, w, OrtRuntime.shared(), (l, g, e) -> l == 2)) {
        assertTrue(ec.loadAll() > 0);
      }
    }
  }

  @Test
  void anotherModeOrBlockSizeIsRefusedNamingTheKeyAndBothValues() {
    LoadedModel m = stored.get(QuantMode.INT4);
    IllegalArgumentException mode =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                new ModelWeights(
                    TINY, m.weights(), OrtRuntime.shared(), WeightQuantization.of(QuantMode.INT8)));
    assertTrue(
        mode.getMessage().contains("pdserve.model.quantization (--quantization)")
            && mode.getMessage().contains("stored quantized int4 (block 64)")
            && mode.getMessage().contains("asks for int8 (block 64)"),
        mode.getMessage());
    IllegalArgumentException block =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                new ReferenceEngine(
                    m,
                    OrtRuntime.shared(),
                    Numerics.weights(new WeightQuantization(QuantMode.INT4, 128))));
    assertTrue(
        block.getMessage().contains("pdserve.model.quantization-block-size")
            && block.getMessage().contains("int4 (block 64)")
            && block.getMessage().contains("int4 (block 128)"),
        block.getMessage());
    IllegalArgumentException none =
        assertThrows(
            IllegalArgumentException.class,
            () -> new ModelWeights(TINY, m.weights(), OrtRuntime.shared()));
    assertTrue(none.getMessage().contains("asks for none"), none.getMessage());

    StoredQuantization s = m.weights().storedQuantization().orElseThrow();
    assertEquals(
        WeightQuantization.of(QuantMode.INT4).withCompute(QuantCompute.INT8),
        s.resolve(Optional.empty(), Optional.empty(), QuantCompute.INT8, "x"),
        "unset mode and block size take the stored ones");
    assertThrows(
        IllegalArgumentException.class,
        () ->
            s.resolve(Optional.of(QuantMode.INT2_MIXED), Optional.empty(), QuantCompute.FP32, "x"));
    IllegalArgumentException eval =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                QuantizationEval.run(
                    m,
                    OrtRuntime.shared(),
                    WeightQuantization.of(QuantMode.INT4),
                    new QuantizationEval.Options(1, 8, 2, 1)));
    assertTrue(eval.getMessage().contains("no fp32 weights to compare with"), eval.getMessage());
  }

  @Test
  void checkpointsQuantizedByOtherToolsAreStillRefused() throws IOException {
    Path gptq = Files.createDirectories(tmp.resolve("gptq"));
    String config = Files.readString(fp32Dir.resolve("config.json"));
    Files.writeString(
        gptq.resolve("config.json"),
        config.replaceFirst(
            "\\{", "{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4},"));
    ConfigException e = assertThrows(ConfigException.class, () -> ModelDirectory.open(gptq));
    assertTrue(
        e.getMessage().contains("declares quantization_config")
            && e.getMessage().contains("pdserve model convert --quantize"),
        e.getMessage());
  }
}
