package dev.pdserve.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.Numerics;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.SafetensorsDType;
import dev.pdserve.model.weights.TestCheckpoints;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The CLI contract other tooling relies on: exit codes, JSON fields, errors naming the option. */
class CliTest {
  record Run(int code, String out, String err) {}

  static Run run(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Main.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
    return new Run(code, out.toString(), err.toString());
  }

  @Test
  void generateJsonHasTheContractFields() throws Exception {
    Run r =
        run(
            "generate",
            "--local",
            "--preset",
            "tiny",
            "--prompt",
            "Hello, 世界",
            "--max-tokens",
            "6",
            "--json");
    assertEquals(0, r.code(), r.err());
    JsonNode j = new ObjectMapper().readTree(r.out());
    assertEquals(6, j.get("token_ids").size());
    assertTrue(j.get("text").isTextual());
    assertEquals("length", j.get("finish_reason").asText());
    assertTrue(j.get("usage").get("prompt_tokens").asInt() > 5);
    assertEquals(6, j.get("usage").get("completion_tokens").asInt());
  }

  @Test
  void generateStreamsTextThatMatchesTheJsonText() throws Exception {
    Run json =
        run(
            "generate",
            "--local",
            "--prompt",
            "stream me",
            "--max-tokens",
            "10",
            "--json",
            "--raw");
    Run streamed =
        run("generate", "--local", "--prompt", "stream me", "--max-tokens", "10", "--raw");
    assertEquals(0, streamed.code(), streamed.err());
    assertEquals(
        new ObjectMapper().readTree(json.out()).get("text").asText() + System.lineSeparator(),
        streamed.out());
  }

  @Test
  void invalidArgumentsExitNonZeroNamingTheOption(@TempDir Path tmp) {
    assertError("--temperature", "generate", "--local", "--prompt", "x", "--temperature", "-1");
    assertError("--top-p", "generate", "--local", "--prompt", "x", "--top-p", "0");
    assertError("--top-p", "generate", "--local", "--prompt", "x", "--top-p", "1.5");
    assertError("--max-tokens", "generate", "--local", "--prompt", "x", "--max-tokens", "0");
    assertError(
        "--prompt-file",
        "generate",
        "--local",
        "--prompt-file",
        tmp.resolve("missing.txt").toString());
    assertError("--preset", "generate", "--local", "--prompt", "x", "--preset", "nope");
    assertError("--bogus", "generate", "--local", "--prompt", "x", "--bogus");
    Run tooLong = run("generate", "--local", "--prompt", "a".repeat(1500), "--max-tokens", "4");
    assertEquals(CliErrors.USAGE, tooLong.code());
    assertTrue(tooLong.err().contains("maximum context length is 1024 tokens"), tooLong.err());
    Path badConfig = tmp.resolve("config.json");
    try {
      Files.writeString(badConfig, "{ \"hidden_size\": 64, ");
    } catch (IOException e) {
      throw new AssertionError(e);
    }
    assertError("config", "model", "info", "--config", badConfig.toString());
  }

  @Test
  void aWorkerTakesItsStartingRoleFromFlagOrConfigAndSaysWhichIsMissing() {
    Run none = run("worker");
    assertTrue(none.code() != 0, "no role: " + none.err());
    assertTrue(
        none.err().contains("pdserve.role") && none.err().contains("PDSERVE_ROLE"),
        "stderr should say where a role comes from: " + none.err());
    Run router = run("worker", "--set", "role=router");
    assertEquals(CliErrors.USAGE, router.code(), router.err());
    assertTrue(router.err().contains("a worker starts as prefill or decode"), router.err());
  }

  @Test
  void badShutdownTimeoutIsAUsageErrorNamingTheFlag() {
    for (String[] cmd :
        new String[][] {
          {"worker", "--role", "decode"}, {"router"}, {"expert", "--experts", "0-7"}
        }) {
      for (String bad : new String[] {"soon", "-5s", "2h", "3601"}) {
        String[] args = Arrays.copyOf(cmd, cmd.length + 2);
        args[cmd.length] = "--shutdown-timeout";
        args[cmd.length + 1] = bad;
        Run r = run(args);
        assertEquals(CliErrors.USAGE, r.code(), String.join(" ", args) + ": " + r.err());
        assertTrue(
            r.err().contains("--shutdown-timeout") && r.err().contains(bad),
            "stderr should name --shutdown-timeout and the value: " + r.err());
      }
    }
  }

  private static void assertError(String mentions, String... args) {
    Run r = run(args);
    assertTrue(r.code() != 0, "expected a failure for " + String.join(" ", args));
    assertTrue(r.err().contains(mentions), "stderr should name " + mentions + ": " + r.err());
  }

  @Test
  void modelInfoPrintsSizesForTheFullSizePreset() {
    Run r = run("model", "info", "--preset", "ernie-4.5-vl-28b-a3b");
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("28.62B total"), r.out());
    assertTrue(r.out().contains("56.0 KiB bf16"), r.out());
    assertTrue(r.out().contains("dense 0; moe 1-27"), r.out());
    assertTrue(r.out().contains("expert 2560x1536"), r.out());
  }

  @Test
  void convertedCheckpointGeneratesLikeThePreset(@TempDir Path tmp) throws Exception {
    ModelConfig cfg = ModelPresets.get("tiny");
    Path ckpt =
        TestCheckpoints.write(
            tmp.resolve("ckpt"),
            cfg,
            new DummyWeights(cfg, ModelSpec.DEFAULT_SEED),
            TestCheckpoints.Layout.released(cfg, SafetensorsDType.F32));
    Path out = tmp.resolve("converted");
    Run conv = run("model", "convert", "--checkpoint", ckpt.toString(), "--out", out.toString());
    assertEquals(0, conv.code(), conv.err());
    Run again = run("model", "convert", "--checkpoint", ckpt.toString(), "--out", out.toString());
    assertTrue(
        again.code() != 0, "converting into a non-empty directory without --overwrite must fail");
    Run fromDir =
        run(
            "generate",
            "--local",
            "--model",
            out.toString(),
            "--prompt",
            "parity",
            "--max-tokens",
            "8",
            "--json");
    Run fromPreset =
        run(
            "generate",
            "--local",
            "--preset",
            "tiny",
            "--prompt",
            "parity",
            "--max-tokens",
            "8",
            "--json");
    assertEquals(0, fromDir.code(), fromDir.err());
    ObjectMapper m = new ObjectMapper();
    assertEquals(
        m.readTree(fromPreset.out()).get("token_ids"), m.readTree(fromDir.out()).get("token_ids"));
  }

  @Test
  void kvDtypeIsAUsageErrorNamingTheFlagAndTheChoicesOnEveryCommandThatTakesIt() {
    String[][] commands = {
      {"generate", "--local", "--prompt", "x"},
      {"model", "info"},
      {"model", "bench"},
      {"worker", "--role", "decode"},
      {"local"},
      {"throughput"}
    };
    for (String[] cmd : commands) {
      String[] args = Arrays.copyOf(cmd, cmd.length + 2);
      args[cmd.length] = "--kv-dtype";
      args[cmd.length + 1] = "fp8";
      Run r = run(args);
      assertEquals(CliErrors.USAGE, r.code(), String.join(" ", args) + ": " + r.err());
      assertTrue(
          r.err().contains("--kv-dtype")
              && r.err().contains("must be fp32, fp16 or bf16, got 'fp8'"),
          String.join(" ", args) + ": stderr should name --kv-dtype and the choices: " + r.err());
    }
  }

  @Test
  void modelInfoPrintsTheKvBytesOfTheChosenDtype() {
    Run bf16 = run("model", "info", "--preset", "ernie-4.5-vl-28b-a3b", "--kv-dtype", "bf16");
    assertEquals(0, bf16.code(), bf16.err());
    assertTrue(
        bf16.out().contains("KV cache          bf16 (--kv-dtype): 56.0 KiB per token"), bf16.out());
    Run fp32 = run("model", "info", "--preset", "ernie-4.5-vl-28b-a3b");
    assertTrue(
        fp32.out().contains("KV cache          fp32 (--kv-dtype): 112.0 KiB per token"),
        fp32.out());
  }

  @Test
  void generateLocalWithKvDtypeGivesTheReferenceTokensOfThatDtype() throws Exception {
    Run r =
        run(
            "generate",
            "--local",
            "--kv-dtype",
            "fp16",
            "--prompt",
            "Hello, 世界",
            "--max-tokens",
            "8",
            "--json");
    assertEquals(0, r.code(), r.err());
    try (LoadedModel m = LoadedModel.load(ModelSpec.preset("tiny"));
        ReferenceEngine fp16 =
            new ReferenceEngine(m, OrtRuntime.shared(), Numerics.kv(KvDtype.FP16))) {
      int[] want =
          fp16.generate(
                  new GenerateRequest(
                      "x", Prompt.user("Hello, 世界"), SamplingParams.greedy(8), true))
              .tokenIds();
      assertEquals(
          new ObjectMapper().valueToTree(want),
          new ObjectMapper().readTree(r.out()).get("token_ids"),
          "generate --local --kv-dtype fp16 differs from the fp16 reference engine");
    }
  }
}
