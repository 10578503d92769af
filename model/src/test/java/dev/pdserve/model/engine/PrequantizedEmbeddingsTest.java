package dev.pdserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.QuantNames;
import dev.pdserve.model.quant.StoredQuantization;
import dev.pdserve.model.quant.WeightQuantization;
import dev.pdserve.model.weights.CheckpointConverter;
import dev.pdserve.model.weights.CheckpointWeights;
import dev.pdserve.model.weights.ConvertOptions;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelWeights;
import dev.pdserve.model.weights.QuantizedLayout;
import dev.pdserve.model.weights.SafetensorsDType;
import dev.pdserve.model.weights.SafetensorsFile;
import dev.pdserve.model.weights.SafetensorsWriter;
import dev.pdserve.model.weights.TestCheckpoints;
import dev.pdserve.model.weights.WeightNames;
import java.io.IOException;
import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The embedding table of a pre-quantized checkpoint: format version 2 stores it only quantized and
 * nodes gather it from the file's mapping; {@code quantize-embeddings=false} over it dequantizes
 * the stored codes (the same logits, bit for bit, as gathering them); a checkpoint converted before
 * (format version 1: an fp32 table beside the codes, untied tables fp32 only) still loads and gives
 * what the fp32 checkpoint quantized on load gives.
 */
class PrequantizedEmbeddingsTest {
  static final ModelConfig TINY = ModelPresets.get("tiny");
  static final ModelConfig UNTIED = TestCheckpoints.untied(TINY);

  @TempDir Path tmp;

  private Path fp32(ModelConfig cfg) {
    return TestCheckpoints.write(
        tmp.resolve("fp32-" + cfg.name()),
        cfg,
        new DummyWeights(cfg, 42),
        TestCheckpoints.Layout.canonical(SafetensorsDType.F32));
  }

  private Path convert(Path src, String name, WeightQuantization q) {
    Path out = tmp.resolve(name);
    CheckpointConverter.convert(src, out, ConvertOptions.defaults().withQuantization(q));
    return out;
  }

  @ParameterizedTest
  @EnumSource(
      value = QuantMode.class,
      names = {"INT8", "INT4", "INT2_MIXED"})
  void formatVersion2StoresTheTableOnlyQuantizedAndNodesGatherItFromTheMapping(QuantMode mode) {
    WeightQuantization q = WeightQuantization.of(mode);
    for (ModelConfig cfg : new ModelConfig[] {TINY, UNTIED}) {
      Path dir = convert(fp32(cfg), "v2-" + cfg.name() + "-" + mode, q);
      QuantFormat f = q.embeddingFormat(cfg).orElseThrow();
      try (LoadedModel m = LoadedModel.load(ModelSpec.directory(dir));
          ModelWeights w = new ModelWeights(cfg, m.weights(), OrtRuntime.shared(), q);
          ModelRunner r = new ModelRunner(cfg, w, OrtRuntime.shared(), Numerics.weights(q))) {
        assertTrue(m.weights().find(WeightNames.EMBED).isEmpty(), "an fp32 table is stored");
        float[] rows = r.embed(new int[] {3, 100, 287});
        float[] table = w.quantize(WeightNames.EMBED, f).dequantize();
        int h = cfg.hidden();
        assertArrayEquals(
            java.util.Arrays.copyOfRange(table, 100 * h, 101 * h),
            java.util.Arrays.copyOfRange(rows, h, 2 * h),
            cfg.name());
        for (String name :
            new String[] {
              QuantNames.gatherCodes(WeightNames.EMBED, f),
              QuantNames.gatherScales(WeightNames.EMBED, f)
            }) {
          OnnxTensor t = w.tensor(name);
          assertFalse(t.ownsBuffer(), name + " was copied");
          Buffer ref = t.getBufferRef().orElseThrow();
          assertTrue(ref.isDirect() && ref.isReadOnly(), name + " is not a view of the mapping");
        }
        assertFalse(w.heldTensors().contains(WeightNames.EMBED));
      }
    }
  }

  @Test
  void fp32EmbeddingsOverAStoredOnlyTableAreItsDequantizationBitForBit() {
    WeightQuantization q = WeightQuantization.of(QuantMode.INT4);
    Path dir = convert(fp32(TINY), "v2", q);
    int[] prompt = ReferenceEngineKvDtypeTest.prompt(23);
    try (LoadedModel m = LoadedModel.load(ModelSpec.directory(dir));
        ReferenceEngine gathered =
            new ReferenceEngine(m, OrtRuntime.shared(), Numerics.weights(q));
        ReferenceEngine dequantized =
            new ReferenceEngine(
                m, OrtRuntime.shared(), Numerics.weights(q.withQuantizedEmbeddings(false)))) {
      var a = ReferenceEngineKvDtypeTest.run(gathered, prompt, new int[] {23}, 5);
      var b = ReferenceEngineKvDtypeTest.run(dequantized, prompt, new int[] {23}, 5);
      assertArrayEquals(a.prefillLogits(), b.prefillLogits(), "prefill logits");
      assertArrayEquals(a.tokens(), b.tokens(), "greedy tokens");
    }
  }

  /** Tied (codes beside the fp32 table) and untied (fp32 only, quantized on load). */
  @ParameterizedTest
  @EnumSource(
      value = QuantMode.class,
      names = {"INT8", "INT4"})
  void aFormatVersion1CheckpointStillLoadsAndServesWhatQuantizeOnLoadServes(QuantMode mode)
      throws IOException {
    WeightQuantization q = WeightQuantization.of(mode);
    for (ModelConfig cfg : new ModelConfig[] {TINY, UNTIED}) {
      Path src = fp32(cfg);
      // what the converter wrote before: the table fp32 (and, tied, the LM head's codes too)
      Path v1 =
          asFormatVersion1(
              convert(src, "new-" + cfg.name() + mode, q.withQuantizedEmbeddings(false)),
              tmp.resolve("v1-" + cfg.name() + mode));
      int[] prompt = ReferenceEngineKvDtypeTest.prompt(31);
      try (LoadedModel old = LoadedModel.load(ModelSpec.directory(v1));
          LoadedModel plain = LoadedModel.load(ModelSpec.directory(src));
          ReferenceEngine fromV1 =
              new ReferenceEngine(old, OrtRuntime.shared(), Numerics.weights(q));
          ReferenceEngine onLoad =
              new ReferenceEngine(plain, OrtRuntime.shared(), Numerics.weights(q))) {
        assertTrue(old.weights().find(WeightNames.EMBED).isPresent(), "a version 1 fp32 table");
        assertEquals(
            cfg.tieEmbeddings(),
            old.weights()
                .storedQuantized(
                    WeightNames.EMBED, QuantizedLayout.formats(cfg, q).get(WeightNames.EMBED))
                .isPresent(),
            cfg.name() + ": codes stored only for a tied table");
        var a = ReferenceEngineKvDtypeTest.run(fromV1, prompt, new int[] {31}, 6);
        var b = ReferenceEngineKvDtypeTest.run(onLoad, prompt, new int[] {31}, 6);
        assertArrayEquals(b.prefillLogits(), a.prefillLogits(), cfg.name() + " prefill logits");
        assertArrayEquals(b.tokens(), a.tokens(), cfg.name() + " greedy tokens");
      }
    }
  }

  /** {@code dir} rewritten as format version 1 into {@code out}: the same tensors, version 1. */
  private static Path asFormatVersion1(Path dir, Path out) throws IOException {
    Files.createDirectories(out);
    String config = Files.readString(dir.resolve("config.json"));
    Files.writeString(
        out.resolve("config.json"),
        config.replaceFirst("\"format_version\"\\s*:\\s*2", "\"format_version\" : 1"));
    Path file = dir.resolve(CheckpointWeights.SINGLE_FILE);
    try (SafetensorsFile f = SafetensorsFile.open(file)) {
      Map<String, String> meta = new TreeMap<>(f.metadata());
      assertEquals("2", meta.get(StoredQuantization.META_VERSION));
      meta.put(StoredQuantization.META_VERSION, "1");
      SafetensorsWriter w = new SafetensorsWriter(SafetensorsDType.F32).metadata(meta);
      for (String n : f.names()) {
        SafetensorsFile.TensorInfo info = f.info(n).orElseThrow();
        ByteBuffer copy = ByteBuffer.allocate((int) info.byteLength());
        copy.put(f.rawBytes(n)).flip();
        w.addRaw(n, info.type().orElseThrow(), info.shape(), copy);
      }
      w.write(out.resolve(CheckpointWeights.SINGLE_FILE));
    }
    return out;
  }
}
