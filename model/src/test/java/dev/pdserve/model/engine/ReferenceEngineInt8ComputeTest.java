package dev.pdserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.quant.QuantCompute;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.WeightQuantization;
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
 * The reference engine with {@code pdserve.model.quantization-compute=int8} (MatMulNBits'
 * accuracy_level 4, int8 activations): not the fp32-compute logits, yet a chunked prefill equals a
 * whole one and a sequence decoded in a batch of three (an odd row count, padded to even) gets the
 * same logits, bit for bit, as decoded alone.
 */
class ReferenceEngineInt8ComputeTest {
  static LoadedModel model;
  static final Map<QuantMode, ReferenceEngine> engines = new EnumMap<>(QuantMode.class);
  static ReferenceEngine int4Fp32;

  static WeightQuantization int8(QuantMode m) {
    return WeightQuantization.of(m).withCompute(QuantCompute.INT8);
  }

  @BeforeAll
  static void setUp() {
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    for (QuantMode m : List.of(QuantMode.INT8, QuantMode.INT4, QuantMode.INT2_MIXED)) {
      engines.put(m, new ReferenceEngine(model, OrtRuntime.shared(), Numerics.weights(int8(m))));
    }
    int4Fp32 =
        new ReferenceEngine(
            model, OrtRuntime.shared(), Numerics.weights(WeightQuantization.of(QuantMode.INT4)));
  }

  @AfterAll
  static void tearDown() {
    engines.values().forEach(ReferenceEngine::close);
    int4Fp32.close();
    model.close();
  }

  @ParameterizedTest
  @EnumSource(
      value = QuantMode.class,
      names = {"INT8", "INT4", "INT2_MIXED"})
  void chunkedPrefillEqualsWhole(QuantMode mode) {
    ReferenceEngine e = engines.get(mode);
    assertEquals(int8(mode), e.runner().numerics().weights());
    int[] p = ReferenceEngineKvDtypeTest.prompt(45);
    var whole = ReferenceEngineKvDtypeTest.run(e, p, new int[] {45}, 8);
    var chunked = ReferenceEngineKvDtypeTest.run(e, p, new int[] {16, 17, 45}, 8);
    assertArrayEquals(whole.prefillLogits(), chunked.prefillLogits(), mode + " prefill logits");
    assertArrayEquals(whole.tokens(), chunked.tokens(), mode + " decoded tokens");
  }

  @Test
  void int8ComputeIsApplied() {
    int[] p = ReferenceEngineKvDtypeTest.prompt(45);
    var fp32 = ReferenceEngineKvDtypeTest.run(int4Fp32, p, new int[] {45}, 0);
    var int8 = ReferenceEngineKvDtypeTest.run(engines.get(QuantMode.INT4), p, new int[] {45}, 0);
    assertFalse(
        Arrays.equals(fp32.prefillLogits(), int8.prefillLogits()),
        "int8 compute gave exactly the fp32-compute logits: accuracy_level 4 is not applied");
    double worst = 0;
    double mag = 0;
    for (int i = 0; i < fp32.prefillLogits().length; i++) {
      worst = Math.max(worst, Math.abs(fp32.prefillLogits()[i] - int8.prefillLogits()[i]));
      mag = Math.max(mag, Math.abs(fp32.prefillLogits()[i]));
    }
    assertTrue(worst < 0.1 * mag, "int8 compute far from fp32 compute: " + worst + " of " + mag);
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
  void int8ComputeNeedsQuantizedWeightsAndKeepsTensorNames() {
    var e =
        assertThrows(
            IllegalArgumentException.class,
            () -> new WeightQuantization(QuantMode.NONE, 64, QuantCompute.INT8));
    assertTrue(e.getMessage().contains("int8 compute needs quantized weights"), e.getMessage());
    assertEquals(QuantCompute.INT8, QuantCompute.parse("INT8"));
    assertThrows(IllegalArgumentException.class, () -> QuantCompute.parse("int4"));
    assertEquals(3, int8(QuantMode.INT4).paddedRows(2) + 1);
    assertEquals(4, int8(QuantMode.INT4).paddedRows(3));
    assertEquals(3, WeightQuantization.of(QuantMode.INT4).paddedRows(3));
    assertEquals(2, WeightQuantization.NONE.paddedRows(1));
    var cfg = model.config();
    var c = dev.pdserve.model.quant.WeightComponent.ROUTED_EXPERTS;
    assertEquals(
        WeightQuantization.of(QuantMode.INT4).format(cfg, 1, c).orElseThrow().tag(),
        int8(QuantMode.INT4).format(cfg, 1, c).orElseThrow().tag());
    assertEquals(4, int8(QuantMode.INT4).format(cfg, 1, c).orElseThrow().compute().accuracyLevel());
  }
}
