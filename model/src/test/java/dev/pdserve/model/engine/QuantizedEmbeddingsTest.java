package dev.pdserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.QuantNames;
import dev.pdserve.model.quant.WeightComponent;
import dev.pdserve.model.quant.WeightQuantization;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.FloatTensor;
import dev.pdserve.model.weights.ModelWeights;
import dev.pdserve.model.weights.WeightNames;
import dev.pdserve.model.weights.WeightSource;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The embedding table in a quantized mode ({@link WeightQuantization#embeddingFormat}): the
 * engine's lookup (ONNX Runtime's GatherBlockQuantized in {@link ModelRunner#embed}) gives, bit for
 * bit, the rows of the dequantized table — also where the hidden size is not a multiple of the
 * block and where the block count is odd (4-bit zero points repacked) — a tied table is read and
 * quantized once for both the LM head and the lookup, no fp32 table is held, and {@code
 * quantize-embeddings=false} gives the fp32 rows.
 */
class QuantizedEmbeddingsTest {
  static final ModelConfig TINY = ModelPresets.get("tiny");
  static LoadedModel fp32;

  @BeforeAll
  static void load() {
    fp32 = LoadedModel.load(ModelSpec.preset("tiny"));
  }

  @AfterAll
  static void close() {
    fp32.close();
  }

  private static int[] everyToken() {
    int[] ids = new int[TINY.vocabSize() + 3];
    for (int i = 0; i < ids.length; i++) {
      ids[i] = i < TINY.vocabSize() ? i : i * 7 % TINY.vocabSize();
    }
    return ids;
  }

  /** hidden 64: block 32 is 2 blocks, 64 one (odd), 128 one padded block sliced back to 64. */
  @ParameterizedTest(name = "{0}, block {1}")
  @CsvSource({
    "INT8,32",
    "INT8,64",
    "INT8,128",
    "INT4,32",
    "INT4,64",
    "INT4,128",
    "INT2_MIXED,16",
    "INT2_MIXED,64"
  })
  void theLookupIsTheDequantizedTableBitForBit(QuantMode mode, int block) {
    WeightQuantization q = new WeightQuantization(mode, block);
    QuantFormat f = q.embeddingFormat(TINY).orElseThrow();
    assertEquals(q.format(TINY, -1, WeightComponent.LM_HEAD).orElseThrow(), f, "LM head's format");
    assertEquals(mode == QuantMode.INT4 ? 4 : 8, f.bits(), "int2-mixed's dense parts are 8-bit");
    try (ModelWeights w = new ModelWeights(TINY, fp32.weights(), OrtRuntime.shared(), q);
        ModelRunner r = new ModelRunner(TINY, w, OrtRuntime.shared(), Numerics.weights(q))) {
      float[] table = w.quantize(WeightNames.EMBED, f).dequantize();
      int[] ids = everyToken();
      float[] rows = r.embed(ids);
      int h = TINY.hidden();
      for (int i = 0; i < ids.length; i++) {
        for (int c = 0; c < h; c++) {
          int want = Float.floatToRawIntBits(table[ids[i] * h + c]);
          int got = Float.floatToRawIntBits(rows[i * h + c]);
          if (want != got) {
            throw new AssertionError(
                q.describe()
                    + ": token "
                    + ids[i]
                    + " value "
                    + c
                    + " is "
                    + rows[i * h + c]
                    + ", the dequantized table has "
                    + table[ids[i] * h + c]);
          }
        }
      }
      assertFalse(
          w.heldTensors().contains(WeightNames.EMBED), "an fp32 table is held: " + w.heldTensors());
      assertTrue(w.heldTensors().contains(QuantNames.gatherCodes(WeightNames.EMBED, f)));
      assertTrue(w.heldTensors().contains(QuantNames.codes(WeightNames.EMBED, f)), "tied head");
    }
  }

  @ParameterizedTest
  @EnumSource(
      value = QuantMode.class,
      names = {"INT8", "INT4", "INT2_MIXED"})
  void fp32EmbeddingsWhenTurnedOff(QuantMode mode) {
    WeightQuantization q = WeightQuantization.of(mode).withQuantizedEmbeddings(false);
    assertTrue(q.embeddingFormat(TINY).isEmpty());
    try (ModelWeights w = new ModelWeights(TINY, fp32.weights(), OrtRuntime.shared(), q);
        ModelRunner r = new ModelRunner(TINY, w, OrtRuntime.shared(), Numerics.weights(q))) {
      int[] ids = everyToken();
      float[] rows = r.embed(ids);
      FloatTensor table = fp32.weights().find(WeightNames.EMBED).orElseThrow();
      for (int i = 0; i < ids.length; i++) {
        for (int c = 0; c < TINY.hidden(); c++) {
          assertEquals(
              table.data().get(ids[i] * TINY.hidden() + c), rows[i * TINY.hidden() + c], 0f);
        }
      }
      assertTrue(w.heldTensors().contains(WeightNames.EMBED));
    }
  }

  /** The tied table is read from the source once: the lookup and the LM head share its codes. */
  @ParameterizedTest
  @EnumSource(
      value = QuantMode.class,
      names = {"INT8", "INT4"})
  void aTiedTableIsQuantizedOnceForTheHeadAndTheLookup(QuantMode mode) {
    AtomicInteger reads = new AtomicInteger();
    WeightSource counting = new CountingSource(fp32.weights(), WeightNames.EMBED, reads);
    WeightQuantization q = WeightQuantization.of(mode);
    try (ModelWeights w = new ModelWeights(TINY, counting, OrtRuntime.shared(), q);
        ModelRunner r = new ModelRunner(TINY, w, OrtRuntime.shared(), Numerics.weights(q))) {
      r.embed(new int[] {1, 2, 3});
      r.logits(new float[2 * TINY.hidden()], 2);
      assertEquals(1, reads.get(), "the fp32 table was read " + reads.get() + " times");
    }
  }

  @Test
  void lowBitDummyWeightsGatherTheirOwnCodesAndNeverMakeAnFp32Table() {
    WeightQuantization q = WeightQuantization.of(QuantMode.INT4);
    DummyWeights low = DummyWeights.lowBit(TINY, 42);
    try (ModelWeights w = new ModelWeights(TINY, low, OrtRuntime.shared(), q);
        ModelRunner r = new ModelRunner(TINY, w, OrtRuntime.shared(), Numerics.weights(q))) {
      QuantFormat f = q.embeddingFormat(TINY).orElseThrow();
      float[] table = low.quantized(WeightNames.EMBED, f).dequantize();
      float[] rows = r.embed(new int[] {5, 200});
      assertArrayEquals(
          java.util.Arrays.copyOfRange(table, 5 * TINY.hidden(), 6 * TINY.hidden()),
          java.util.Arrays.copyOf(rows, TINY.hidden()));
      Set<String> held = w.heldTensors();
      assertFalse(held.contains(WeightNames.EMBED), "an fp32 table: " + held);
      double sq = 0;
      for (float v : table) {
        sq += v * v;
      }
      double std = Math.sqrt(sq / table.length);
      assertTrue(Math.abs(std - 0.5) < 0.05, "the fp32 generator's spread (0.5), got " + std);
    }
  }

  /** A quantized engine's tokens depend on the table's quantization (its codes are used). */
  @ParameterizedTest
  @EnumSource(
      value = QuantMode.class,
      names = {"INT8", "INT4"})
  void quantizedAndFp32TablesGiveDifferentLogitsOfTheSameMode(QuantMode mode) {
    int[] prompt = ReferenceEngineKvDtypeTest.prompt(29);
    WeightQuantization on = WeightQuantization.of(mode);
    try (ReferenceEngine a = new ReferenceEngine(fp32, OrtRuntime.shared(), Numerics.weights(on));
        ReferenceEngine b =
            new ReferenceEngine(
                fp32, OrtRuntime.shared(), Numerics.weights(on.withQuantizedEmbeddings(false)))) {
      var x = ReferenceEngineKvDtypeTest.run(a, prompt, new int[] {29}, 4);
      var y = ReferenceEngineKvDtypeTest.run(b, prompt, new int[] {29}, 4);
      assertFalse(java.util.Arrays.equals(x.prefillLogits(), y.prefillLogits()), on.describe());
    }
  }

  /** Counts reads of one tensor; everything else as the source gives it. */
  private record CountingSource(WeightSource base, String watched, AtomicInteger reads)
      implements WeightSource {
    @Override
    public Optional<FloatTensor> find(String name) {
      if (name.equals(watched)) {
        reads.incrementAndGet();
      }
      return base.find(name);
    }

    @Override
    public Optional<long[]> shape(String name) {
      return base.shape(name);
    }

    @Override
    public Set<String> names() {
      return base.names();
    }

    @Override
    public String describe() {
      return "counting " + base.describe();
    }
  }
}
