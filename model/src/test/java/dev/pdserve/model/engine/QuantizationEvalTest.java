package dev.pdserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.WeightQuantization;
import org.junit.jupiter.api.Test;

/** {@link QuantizationEval}: fp32 against itself is exact; int8 is close, int2-mixed further. */
class QuantizationEvalTest {
  static final QuantizationEval.Options OPTIONS = new QuantizationEval.Options(4, 12, 8, 3);

  @Test
  void fp32AgainstItselfAgreesEverywhere() {
    try (LoadedModel m = LoadedModel.load(ModelSpec.preset("tiny"))) {
      var r = QuantizationEval.run(m, OrtRuntime.shared(), WeightQuantization.NONE, OPTIONS);
      assertEquals(32, r.positions());
      assertEquals(0.0, r.meanKl());
      assertEquals(0.0, r.maxKl());
      assertEquals(1.0, r.top1Agreement());
      assertEquals(8.0, r.meanIdenticalPrefix());
      assertEquals(1.0, r.fullyIdentical());
    }
  }

  @Test
  void int8IsCloserThanInt2Mixed() {
    try (LoadedModel m = LoadedModel.load(ModelSpec.preset("tiny"))) {
      var int8 =
          QuantizationEval.run(
              m, OrtRuntime.shared(), WeightQuantization.of(QuantMode.INT8), OPTIONS);
      var int2 =
          QuantizationEval.run(
              m, OrtRuntime.shared(), WeightQuantization.of(QuantMode.INT2_MIXED), OPTIONS);
      assertTrue(int8.meanKl() > 0, "int8 gave the fp32 distributions exactly");
      assertTrue(int8.meanKl() < int2.meanKl(), int8 + " vs " + int2);
      assertTrue(int8.top1Agreement() >= 0.9, int8.toString());
      assertTrue(int8.p99Kl() <= int8.maxKl());
    }
  }
}
