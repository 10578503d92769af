package dev.pdserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.QuantizedMatrix;
import dev.pdserve.model.quant.WeightQuantization;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelWeights;
import dev.pdserve.model.weights.WeightNames;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Dummy weights generated directly in a low-bit format: the same bits from the same seed, the fp32
 * generator's spread, zero points that centre the codes, and a model that runs on them.
 */
class LowBitDummyWeightsTest {
  static final ModelConfig CFG = ModelPresets.get("small");

  @ParameterizedTest(name = "{0}-bit, block {1}, zero points {2}")
  @CsvSource({"8,64,false", "4,64,true", "4,32,true", "2,64,true"})
  void sameSeedSameBitsAndTheFp32GeneratorsSpread(int bits, int block, boolean zp) {
    QuantFormat f = new QuantFormat(bits, block, zp);
    String name = WeightNames.expert(CFG, 1, 0, 5, "up_proj");
    QuantizedMatrix a = DummyWeights.lowBit(CFG, 42).quantized(name, f);
    QuantizedMatrix b = DummyWeights.lowBit(CFG, 42).quantized(name, f);
    assertArrayEquals(a.codes(), b.codes());
    assertArrayEquals(a.scales(), b.scales());
    assertArrayEquals(a.zeroPoints(), b.zeroPoints());
    assertFalse(
        Arrays.equals(a.codes(), DummyWeights.lowBit(CFG, 43).quantized(name, f).codes()),
        "another seed, other codes");
    assertFalse(
        Arrays.equals(
            a.codes(),
            DummyWeights.lowBit(CFG, 42)
                .quantized(WeightNames.expert(CFG, 1, 0, 6, "up_proj"), f)
                .codes()),
        "another expert, other codes");

    long[] shape = new DummyWeights(CFG, 42).shape(name).orElseThrow();
    assertEquals(shape[0], a.n());
    assertEquals(shape[1], a.k());
    float[] w = a.dequantize();
    double sum = 0;
    double sq = 0;
    for (float v : w) {
      sum += v;
      sq += (double) v * v;
    }
    double mean = sum / w.length;
    double std = Math.sqrt(sq / w.length - mean * mean);
    double want = 1.0 / Math.sqrt(a.k());
    assertTrue(Math.abs(std / want - 1) < 0.03, "std " + std + " vs the fp32 generator's " + want);
    assertTrue(Math.abs(mean) < 0.02 * want, "mean " + mean + " is not centred");
    int blocks = f.blocks(a.k());
    boolean[] seen = new boolean[f.maxCode() + 1];
    for (int r = 0; r < a.n(); r++) {
      for (int blk = 0; blk < blocks; blk++) {
        int z = a.zeroPoint(r, blk);
        assertTrue(z == f.defaultZeroPoint() || (zp && z == f.defaultZeroPoint() - 1), "zp " + z);
      }
      for (int c = 0; c < a.k(); c++) {
        seen[a.code(r, c)] = true;
      }
    }
    for (int c = 0; c <= f.maxCode(); c++) {
      assertTrue(seen[c], "code " + c + " never drawn");
    }
  }

  @Test
  void lowBitWeightsNeedAQuantizedMode() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> new ModelWeights(CFG, DummyWeights.lowBit(CFG, 42), OrtRuntime.shared()));
    assertTrue(e.getMessage().contains("need a quantized mode"), e.getMessage());
    assertThrows(
        IllegalArgumentException.class,
        () -> ModelSpec.directory(java.nio.file.Path.of("m")).withLowBitWeights(true));
  }

  @ParameterizedTest
  @EnumSource(
      value = QuantMode.class,
      names = {"INT8", "INT4", "INT2_MIXED"})
  void aModelRunsOnThemAndTwoLoadsGiveTheSameTokens(QuantMode mode) {
    int[][] runs = new int[2][];
    for (int i = 0; i < 2; i++) {
      try (LoadedModel m = LoadedModel.load(ModelSpec.preset("tiny").withLowBitWeights(true));
          ReferenceEngine e =
              new ReferenceEngine(
                  m, OrtRuntime.shared(), Numerics.weights(WeightQuantization.of(mode)))) {
        assertTrue(m.spec().describe().contains("low-bit dummy weights"), m.spec().describe());
        runs[i] =
            e.generate(
                    new GenerateRequest(
                        "low-bit",
                        Prompt.tokens(new int[] {40, 41, 42, 43, 44, 45, 46, 47}),
                        SamplingParams.builder()
                            .temperature(0)
                            .maxTokens(8)
                            .ignoreEos(true)
                            .build(),
                        true))
                .tokenIds();
      }
    }
    assertEquals(8, runs[0].length);
    assertArrayEquals(runs[0], runs[1], mode + ": two loads of the same seed");
  }
}
