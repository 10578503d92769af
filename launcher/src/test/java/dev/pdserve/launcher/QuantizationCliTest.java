package dev.pdserve.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.Numerics;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.WeightQuantization;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.SafetensorsDType;
import dev.pdserve.model.weights.TestCheckpoints;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --quantization}, {@code --quantization-block-size} and {@code --quantization-compute} on
 * the commands that load a model.
 */
class QuantizationCliTest {
  static final String[][] COMMANDS = {
    {"generate", "--local", "--prompt", "x"},
    {"model", "info"},
    {"model", "bench"},
    {"model", "eval"},
    {"worker", "--role", "decode"},
    {"expert"},
    {"local"},
    {"throughput"}
  };

  @Test
  void badValuesAreUsageErrorsNamingTheFlagOnEveryCommand() {
    for (String[] cmd : COMMANDS) {
      CliTest.Run mode = CliTest.run(with(cmd, "--quantization", "int3"));
      assertEquals(CliErrors.USAGE, mode.code(), String.join(" ", cmd) + ": " + mode.err());
      assertTrue(
          mode.err().contains("--quantization")
              && mode.err().contains("must be none, int8, int4 or int2-mixed, got 'int3'"),
          String.join(" ", cmd) + ": " + mode.err());
      CliTest.Run block = CliTest.run(with(cmd, "--quantization-block-size", "48"));
      assertEquals(CliErrors.USAGE, block.code(), String.join(" ", cmd) + ": " + block.err());
      assertTrue(
          block.err().contains("--quantization-block-size") && block.err().contains("power of two"),
          String.join(" ", cmd) + ": " + block.err());
      CliTest.Run compute = CliTest.run(with(cmd, "--quantization-compute", "int4"));
      assertEquals(CliErrors.USAGE, compute.code(), String.join(" ", cmd) + ": " + compute.err());
      assertTrue(
          compute.err().contains("--quantization-compute")
              && compute.err().contains("must be fp32 or int8, got 'int4'"),
          String.join(" ", cmd) + ": " + compute.err());
      CliTest.Run noMode = CliTest.run(with(cmd, "--quantization-compute", "int8"));
      assertEquals(CliErrors.USAGE, noMode.code(), String.join(" ", cmd) + ": " + noMode.err());
      assertTrue(
          noMode.err().contains("--quantization-compute int8 needs --quantization"),
          String.join(" ", cmd) + ": " + noMode.err());
    }
  }

  /** {@code model info}: the 28B table at its stored size, and fp32 with the flag turned off. */
  @Test
  void modelInfoShowsTheEmbeddingTableAtItsStoredSize() {
    CliTest.Run on =
        CliTest.run("model", "info", "--preset", "ernie-4.5-vl-28b-a3b", "--quantization", "int4");
    assertEquals(0, on.code(), on.err());
    assertTrue(
        on.out().matches("(?s).*embeddings\\s+144\\.0 MiB\\s+4-bit \\(tied: also the LM head\\).*"),
        on.out());
    CliTest.Run off =
        CliTest.run(
            "model",
            "info",
            "--preset",
            "ernie-4.5-vl-28b-a3b",
            "--quantization",
            "int8",
            "--no-quantize-embeddings");
    assertEquals(0, off.code(), off.err());
    assertTrue(off.out().matches("(?s).*embeddings\\s+1010\\.0 MiB\\s+32-bit.*"), off.out());
    assertTrue(off.out().matches("(?s).*LM head\\s+268\\.3 MiB\\s+8-bit.*"), off.out());
  }

  private static String[] with(String[] cmd, String flag, String value) {
    String[] args = Arrays.copyOf(cmd, cmd.length + 2);
    args[cmd.length] = flag;
    args[cmd.length + 1] = value;
    return args;
  }

  @Test
  void generateLocalGivesTheReferenceTokensOfThatMode() throws Exception {
    CliTest.Run r =
        CliTest.run(
            "generate",
            "--local",
            "--quantization",
            "int4",
            "--quantization-block-size",
            "32",
            "--prompt",
            "Hello, 世界",
            "--max-tokens",
            "8",
            "--json");
    assertEquals(0, r.code(), r.err());
    WeightQuantization q = new WeightQuantization(QuantMode.INT4, 32);
    try (LoadedModel m = LoadedModel.load(ModelSpec.preset("tiny"));
        ReferenceEngine e = new ReferenceEngine(m, OrtRuntime.shared(), Numerics.weights(q))) {
      int[] want =
          e.generate(
                  new GenerateRequest(
                      "g", Prompt.user("Hello, 世界"), SamplingParams.greedy(8), true))
              .tokenIds();
      assertEquals(
          new ObjectMapper().valueToTree(want),
          new ObjectMapper().readTree(r.out()).get("token_ids"),
          "generate --local --quantization int4 differs from the int4 reference engine");
    }
  }

  @Test
  void benchCompareEntriesCanAskForInt8Compute(
      @org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
    java.nio.file.Path json = dir.resolve("bench.json");
    CliTest.Run r =
        CliTest.run(
            "model",
            "bench",
            "--compare",
            "int4:64:int8,int8::int8",
            "--batches",
            "2",
            "--prompt-len",
            "4",
            "--decode-steps",
            "2",
            "--repeats",
            "1",
            "--json",
            json.toString());
    assertEquals(0, r.code(), r.err());
    JsonNode modes = new ObjectMapper().readTree(json.toFile()).get("modes");
    assertEquals(2, modes.size(), modes.toString());
    assertEquals("int8", modes.get(0).get("quantization_compute").asText());
    assertEquals("int4 (block 64, int8 compute)", modes.get(0).get("weights").asText());
    assertEquals("int8", modes.get(1).get("quantization").asText());
    assertEquals("int8", modes.get(1).get("quantization_compute").asText());
    CliTest.Run bad = CliTest.run("model", "bench", "--compare", "int4:64:int4");
    assertEquals(CliErrors.USAGE, bad.code(), bad.err());
    assertTrue(
        bad.err().contains("--compare 'int4:64:int4'") && bad.err().contains("fp32 or int8"),
        bad.err());
    CliTest.Run none = CliTest.run("model", "bench", "--compare", "none:64:int8");
    assertEquals(CliErrors.USAGE, none.code(), none.err());
    assertTrue(none.err().contains("int8 compute needs quantized weights"), none.err());
  }

  @Test
  void modelEvalOfFp32AgainstItselfIsExact() throws Exception {
    CliTest.Run r =
        CliTest.run("model", "eval", "--prompts", "2", "--prompt-len", "6", "--tokens", "4");
    assertEquals(0, r.code(), r.err());
    JsonNode j = new ObjectMapper().readTree(r.out());
    assertEquals("none", j.get("quantization").asText());
    assertEquals(1.0, j.get("top1_agreement").asDouble());
    assertEquals(0.0, j.get("mean_kl").asDouble());
    assertEquals(4.0, j.get("mean_identical_prefix").asDouble());
  }

  @Test
  void convertQuantizeServesTheStoredModeAndRefusesAnother(@TempDir Path tmp) throws Exception {
    ModelConfig cfg = ModelPresets.get("tiny");
    Path ckpt =
        TestCheckpoints.write(
            tmp.resolve("ckpt"),
            cfg,
            new DummyWeights(cfg, ModelSpec.DEFAULT_SEED),
            TestCheckpoints.Layout.released(cfg, SafetensorsDType.F32));
    CliTest.Run noMode =
        CliTest.run(
            "model",
            "convert",
            "--checkpoint",
            ckpt.toString(),
            "--out",
            "x",
            "--block-size",
            "32");
    assertEquals(CliErrors.USAGE, noMode.code(), noMode.err());
    assertTrue(noMode.err().contains("--block-size needs --quantize"), noMode.err());

    Path out = tmp.resolve("int4");
    CliTest.Run conv =
        CliTest.run(
            "model",
            "convert",
            "--checkpoint",
            ckpt.toString(),
            "--out",
            out.toString(),
            "--quantize",
            "int4",
            "--block-size",
            "32");
    assertEquals(0, conv.code(), conv.err());
    assertTrue(conv.out().contains("matrices stored int4 (block 32)"), conv.out());

    String[] gen = {"generate", "--local", "--prompt", "parity", "--max-tokens", "8", "--json"};
    CliTest.Run fromDir = CliTest.run(with(gen, "--model", out.toString()));
    CliTest.Run onLoad =
        CliTest.run(with(with(gen, "--quantization", "int4"), "--quantization-block-size", "32"));
    assertEquals(0, fromDir.code(), fromDir.err());
    assertEquals(0, onLoad.code(), onLoad.err());
    ObjectMapper m = new ObjectMapper();
    assertEquals(
        m.readTree(onLoad.out()).get("token_ids"),
        m.readTree(fromDir.out()).get("token_ids"),
        "the stored int4 checkpoint differs from the preset quantized to int4 on load");

    CliTest.Run other =
        CliTest.run(with(with(gen, "--model", out.toString()), "--quantization", "int8"));
    assertEquals(CliErrors.USAGE, other.code(), other.err());
    assertTrue(
        other.err().contains("pdserve.model.quantization (--quantization)")
            && other.err().contains("stored quantized int4 (block 32)")
            && other.err().contains("asks for int8 (block 32)"),
        other.err());
  }
}
