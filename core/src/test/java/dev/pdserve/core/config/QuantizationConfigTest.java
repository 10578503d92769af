package dev.pdserve.core.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.engine.Numerics;
import dev.pdserve.model.quant.QuantCompute;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.WeightQuantization;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

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
  void embeddingsAreQuantizedWithTheModeUnlessTurnedOff(@TempDir Path dir) throws IOException {
    NodeConfig on =
        NodeConfigLoader.fromMap(Map.of("role", "decode", "model.quantization", "int4"));
    assertTrue(on.engine().quantization().quantizeEmbeddings());
    NodeConfig off =
        NodeConfigLoader.fromMap(
            Map.of(
                "role",
                "decode",
                "model.quantization",
                "int8",
                "model.quantize-embeddings",
                "false"));
    assertEquals(
        new WeightQuantization(QuantMode.INT8, 64).withQuantizedEmbeddings(false),
        off.engine().quantization());
    assertEquals("int8 (block 64, fp32 embeddings)", off.engine().quantization().describe());
    NodeConfig none =
        NodeConfigLoader.fromMap(Map.of("role", "decode", "model.quantize-embeddings", "false"));
    assertEquals(WeightQuantization.NONE, none.engine().quantization(), "no effect with none");
    // over a pre-quantized directory too: the table is then dequantized from the stored codes
    Files.writeString(
        dir.resolve("config.json"),
        "{\"quantization_config\": {\"quant_method\": \"pdserve\", \"format_version\": 2,"
            + " \"mode\": \"int4\", \"block_size\": 64}}");
    NodeConfig stored =
        NodeConfigLoader.fromMap(
            Map.of(
                "role",
                "decode",
                "model.dir",
                dir.toString(),
                "model.quantize-embeddings",
                "false"));
    assertEquals(
        WeightQuantization.of(QuantMode.INT4).withQuantizedEmbeddings(false),
        stored.engine().quantization());
    NodeConfigException bad =
        assertThrows(
            NodeConfigException.class,
            () ->
                NodeConfigLoader.fromMap(
                    Map.of("role", "decode", "model.quantize-embeddings", "maybe")));
    assertTrue(
        String.join("\n", bad.problems()).contains("pdserve.model.quantize-embeddings"),
        String.join("\n", bad.problems()));
  }

  @Test
  void aPreQuantizedModelDirectoryIsServedAsStoredUnlessAnotherModeIsSet(@TempDir Path dir)
      throws IOException {
    Files.writeString(
        dir.resolve("config.json"),
        "{\"quantization_config\": {\"quant_method\": \"pdserve\", \"format_version\": 1,"
            + " \"mode\": \"int4\", \"block_size\": 32}}");
    String d = dir.toString();
    NodeConfig unset = NodeConfigLoader.fromMap(Map.of("role", "decode", "model.dir", d));
    assertEquals(new WeightQuantization(QuantMode.INT4, 32), unset.engine().quantization());
    NodeConfig int8Compute =
        NodeConfigLoader.fromMap(
            Map.of("role", "decode", "model.dir", d, "model.quantization-compute", "int8"));
    assertEquals(
        new WeightQuantization(QuantMode.INT4, 32, QuantCompute.INT8),
        int8Compute.engine().quantization());
    NodeConfig same =
        NodeConfigLoader.fromMap(
            Map.of("role", "decode", "model.dir", d, "model.quantization", "int4"));
    assertEquals(new WeightQuantization(QuantMode.INT4, 32), same.engine().quantization());

    NodeConfigException mode =
        assertThrows(
            NodeConfigException.class,
            () ->
                NodeConfigLoader.fromMap(
                    Map.of("role", "decode", "model.dir", d, "model.quantization", "int8")));
    String m = String.join("\n", mode.problems());
    assertTrue(
        m.startsWith("pdserve.model.quantization: pdserve.model.dir " + d)
            && m.contains("stored quantized int4 (block 32)")
            && m.contains("asks for int8 (block 32)"),
        m);
    NodeConfigException block =
        assertThrows(
            NodeConfigException.class,
            () ->
                NodeConfigLoader.fromMap(
                    Map.of(
                        "role", "decode", "model.dir", d, "model.quantization-block-size", "64")));
    String b = String.join("\n", block.problems());
    assertTrue(
        b.contains("pdserve.model.quantization-block-size (--quantization-block-size)")
            && b.contains("asks for int4 (block 64)"),
        b);
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

  @Test
  void int8ComputeIsCarriedIntoTheNumericsAndRefusedWithoutAMode() {
    NodeConfig c =
        NodeConfigLoader.fromMap(
            Map.of(
                "role",
                "expert",
                "model.quantization",
                "int4",
                "model.quantization-compute",
                "int8"));
    WeightQuantization want = new WeightQuantization(QuantMode.INT4, 64, QuantCompute.INT8);
    assertEquals(want, c.engine().quantization());
    assertEquals(new Numerics(KvDtype.FP32, want), c.engine().numerics());
    assertEquals("int4 (block 64, int8 compute)", want.describe());
    assertEquals(
        QuantCompute.FP32,
        NodeConfigLoader.fromMap(Map.of("role", "decode")).engine().quantization().compute());
    NodeConfigException bad =
        assertThrows(
            NodeConfigException.class,
            () ->
                NodeConfigLoader.fromMap(
                    Map.of(
                        "role", "decode",
                        "model.quantization", "int4",
                        "model.quantization-compute", "int4")));
    assertEquals(
        List.of("pdserve.model.quantization-compute: must be fp32 or int8, got 'int4' (from flag)"),
        bad.problems());
    NodeConfigException none =
        assertThrows(
            NodeConfigException.class,
            () ->
                NodeConfigLoader.fromMap(
                    Map.of("role", "decode", "model.quantization-compute", "int8")));
    assertEquals(1, none.problems().size(), none.problems().toString());
    assertTrue(
        none.problems().get(0).startsWith("pdserve.model.quantization-compute: int8 needs")
            && none.problems().get(0).contains("pdserve.model.quantization"),
        none.problems().toString());
  }
}
