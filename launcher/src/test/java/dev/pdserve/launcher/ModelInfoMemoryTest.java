package dev.pdserve.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;

/** {@code pdserve model info}'s memory section: per component, per role, in each mode. */
class ModelInfoMemoryTest {
  record Run(int code, String out, String err) {}

  static Run run(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Main.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
    return new Run(code, out.toString(), err.toString());
  }

  /** The first line of the memory section starting with {@code starts}. */
  static String line(String out, String starts) {
    int memory = out.indexOf("\nmemory ");
    assertTrue(memory >= 0, "no memory section in\n" + out);
    return out.substring(memory + 1)
        .lines()
        .filter(l -> l.trim().startsWith(starts))
        .findFirst()
        .orElseThrow(() -> new AssertionError("no line '" + starts + "' in\n" + out));
  }

  @Test
  void fp32InfoOf28bShowsEachComponentAndEveryRolesPeak() {
    Run r = run("model", "info", "--preset", "ernie-4.5-vl-28b-a3b");
    assertEquals(0, r.code(), r.err());
    assertTrue(line(r.out(), "memory").contains("--quantization none (block 64), --kv-dtype fp32"));
    assertTrue(line(r.out(), "routed experts").contains("GiB   32-bit"), r.out());
    assertTrue(line(r.out(), "embeddings").contains("(tied: also the LM head)"), r.out());
    assertTrue(line(r.out(), "vision tower + resampler").contains("32-bit"), r.out());
    assertTrue(line(r.out(), "KV per token (fp32)").contains("112.0 KiB"), r.out());
    String vision = line(r.out(), "vision encoder peak");
    assertTrue(vision.contains("not in the peaks"), r.out());
    assertTrue(vision.contains("(24708 patches), attention in blocks of 256"), vision);
    assertTrue(vision.contains("GiB"), vision);
    for (String role :
        new String[] {
          "prefill worker (experts remote)",
          "decode worker (experts remote)",
          "expert shard (16 of 64 experts)",
          "single process"
        }) {
      assertTrue(line(r.out(), role).contains("GiB"), r.out());
    }
  }

  @Test
  void int4WithBf16KvIsSmallerAndSaysItsModes() {
    Run fp32 = run("model", "info", "--preset", "ernie-4.5-vl-28b-a3b");
    Run int4 =
        run(
            "model",
            "info",
            "--preset",
            "ernie-4.5-vl-28b-a3b",
            "--quantization",
            "int4",
            "--kv-dtype",
            "bf16",
            "--expert-shards",
            "2");
    assertEquals(0, int4.code(), int4.err());
    assertTrue(line(int4.out(), "routed experts").contains("4-bit"), int4.out());
    assertTrue(
        line(int4.out(), "embeddings").contains("4-bit (tied: also the LM head)"), int4.out());
    assertTrue(line(int4.out(), "KV per token (bf16)").contains("56.0 KiB"), int4.out());
    assertTrue(line(int4.out(), "expert shard (32 of 64 experts)").contains("GiB"), int4.out());
    double all32 = gib(line(fp32.out(), "weights in all"));
    double all4 = gib(line(int4.out(), "weights in all"));
    assertTrue(all4 < all32 / 5, all4 + " vs " + all32);
  }

  @Test
  void theA47bPresetsAreSizedWithoutWeights() {
    Run r = run("model", "info", "--preset", "ernie-4.5-300b-a47b", "--quantization", "int2-mixed");
    assertEquals(0, r.code(), r.err());
    assertTrue(line(r.out(), "routed experts").contains("2-bit (the first 3 MoE layers 4-bit)"));
    assertTrue(line(r.out(), "LM head").contains("8-bit"), r.out());
    Run vl = run("model", "info", "--preset", "ernie-4.5-vl-424b-a47b");
    assertEquals(0, vl.code(), vl.err());
    assertTrue(line(vl.out(), "vision tower + resampler").contains("GiB"), vl.out());
  }

  @Test
  void badModeOrBlockSizeIsAUsageErrorNamingTheOption() {
    Run mode = run("model", "info", "--quantization", "int3");
    assertEquals(CliErrors.USAGE, mode.code(), mode.err());
    assertTrue(mode.err().contains("--quantization"), mode.err());
    assertTrue(mode.err().contains("must be none, int8, int4 or int2-mixed"), mode.err());
    Run block = run("model", "info", "--quantization", "int4", "--quantization-block-size", "24");
    assertTrue(block.code() != 0, block.err());
    assertTrue(block.err().contains("must be a power of two from 16 to 256"), block.err());
  }

  static double gib(String line) {
    String[] parts = line.trim().split("\\s+");
    for (int i = 1; i < parts.length; i++) {
      if (parts[i].equals("GiB")) {
        return Double.parseDouble(parts[i - 1]);
      }
    }
    throw new AssertionError("no GiB figure in " + line);
  }
}
