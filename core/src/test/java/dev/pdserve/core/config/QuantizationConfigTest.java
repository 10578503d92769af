package dev.pdserve.core.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.engine.Numerics;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.WeightQuantization;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * {@code pdserve.model.quantization} and {@code pdserve.model.quantization-block-size}: none and 64
 * by default, the node's numerics follow, bad values refused at start naming the key.
 */
class QuantizationConfigTest {
  @Test
  void noneUnlessSetAndTheNodeNumericsFollow() {
    NodeConfig plain = NodeConfigLoader.fromMap(Map.of("role", "decode"));
    assertEquals(WeightQuantization.NONE, plain.engine().quantization());
    assertEquals(Numerics.DEFAULT, plain.engine().numerics());
    NodeConfig c =
        NodeConfigLoader.fromMap(
            Map.of(
                "role",
                "expert",
                "model.quantization",
                "int2-mixed",
                "model.quantization-block-size",
                "32"));
    assertEquals(new WeightQuantization(QuantMode.INT2_MIXED, 32), c.engine().quantization());
    assertEquals(
        new Numerics(KvDtype.FP32, new WeightQuantization(QuantMode.INT2_MIXED, 32)),
        c.engine().numerics());
  }

  @Test
  void badModesAndBlockSizesAreRefusedNamingTheKey() {
    NodeConfigException mode =
        assertThrows(
            NodeConfigException.class,
            () -> NodeConfigLoader.fromMap(Map.of("role", "decode", "model.quantization", "int3")));
    assertEquals(
        List.of(
            "pdserve.model.quantization: must be none, int8, int4 or int2-mixed, got 'int3'"
                + " (from flag)"),
        mode.problems());
    NodeConfigException block =
        assertThrows(
            NodeConfigException.class,
            () ->
                NodeConfigLoader.fromMap(
                    Map.of("role", "decode", "model.quantization-block-size", "48")));
    assertEquals(
        List.of(
            "pdserve.model.quantization-block-size: "
                + WeightQuantization.BLOCK_MUST_BE
                + ", got '48' (from flag)"),
        block.problems());
  }
}
