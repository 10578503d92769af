package dev.pdserve.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.engine.RoutedBatch;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The fused-MoE benchmark stays runnable and its fused variants compute what the per-expert
 * sessions compute: on the {@code tiny} preset (block 16, which QMoE's zero-point layout needs at
 * hidden 64 / intermediate 32) every mode prints a row of figures per batch, ONNX Runtime's MoE /
 * QMoE outputs agree with the per-expert sessions', and the per-expert and fused-expanded variants
 * give rows bit-identical whatever the batch. No timing is checked.
 */
class FusedMoeBenchmarkRunTest {
  private static final List<String> MODES =
      List.of("fp32", "int4", "int4:int8", "int8", "int8:int8");

  @Test
  void fusedOperatorsMatchThePerExpertSessionsInEveryMode() {
    // default modes: fp32, int4, int4:int8, int8, int8:int8
    String out = run("preset=tiny", "block=16", "batches=1,8,32", "iterations=2");
    assertTrue(out.startsWith("fused MoE vs per-expert sessions: preset tiny"), out);

    String[] sections = out.split("\nmode ");
    assertEquals(MODES.size() + 1, sections.length, "one section per mode in:\n" + out);
    Pattern figures =
        Pattern.compile(
            "(?m)^\\s+(\\d+)\\s+[\\d.]+(\\s+[\\d.]+ \\([\\d.]+\\)){3}\\s+[\\d.]+\\s+[\\d.]+$");
    Pattern agreement =
        Pattern.compile("(?m)^  agreement batch\\s+(\\d+): fused (\\S+) fused-expanded (\\S+)$");
    for (int m = 0; m < MODES.size(); m++) {
      String section = sections[m + 1];
      assertTrue(section.startsWith(MODES.get(m) + " "), section);
      assertTrue(
          section.contains("resident memory added for the 64 experts"), "memory line:\n" + section);
      Matcher rows = figures.matcher(section);
      int n = 0;
      while (rows.find()) {
        n++;
      }
      assertEquals(3, n, "a row of figures per batch (1, 8, 32) in:\n" + section);
      Matcher a = agreement.matcher(section);
      int agreed = 0;
      while (a.find()) {
        agreed++;
        for (int g = 2; g <= 3; g++) {
          double rel = Double.parseDouble(a.group(g));
          // fp32 compute on both sides: rounding only; int8 activations (per-expert) against the
          // fused operator's fp32 compute: the int8 rounding of the activations
          double tolerance = MODES.get(m).endsWith(":int8") ? 2e-2 : 1e-5;
          assertTrue(
              rel < tolerance,
              MODES.get(m) + " batch " + a.group(1) + ": fused output off by " + rel + ":\n" + out);
        }
      }
      assertEquals(3, agreed, "an agreement line per batch in:\n" + section);
    }
  }

  @Test
  void perExpertAndExpandedFusedRowsDoNotDependOnTheBatch() {
    String out = run("preset=tiny", "block=16", "batches=1,8,32", "iterations=1");

    List<String> lines = out.lines().filter(l -> l.startsWith("  invariance ")).toList();
    assertEquals(2 * MODES.size(), lines.size(), "1 and 8 rows against 32, per mode:\n" + out);
    for (String l : lines) {
      assertTrue(l.contains(" per-expert identical"), l);
      assertTrue(l.contains(" fused-expanded identical"), l);
    }
  }

  @Test
  void expandedRoutingGivesEachPairOneExpertAndEveryExpertTwoRows() {
    // two tokens, top-2: expert 3 is used twice, experts 1 and 5 once each
    RoutedBatch b =
        new RoutedBatch(
            1,
            2,
            2,
            2,
            new float[] {1, 2, 3, 4},
            new int[2],
            new long[] {3, 1, 3, 5},
            new float[] {0.75f, 0.25f, 0.5f, 0.5f});
    FusedRouting.Expanded ex = FusedRouting.expanded(b, 6);

    assertEquals(6, ex.rows(), "4 pairs plus a copy for each single-row expert (1 and 5)");
    int[] rowsPerExpert = new int[6];
    for (int r = 0; r < ex.rows(); r++) {
      int finite = 0;
      for (int e = 0; e < 6; e++) {
        float v = ex.router()[r * 6 + e];
        if (v != Float.NEGATIVE_INFINITY) {
          assertEquals(0f, v, "the chosen expert's value (softmax of one value is 1)");
          rowsPerExpert[e]++;
          finite++;
        }
      }
      assertEquals(1, finite, "row " + r + " picks one expert");
    }
    assertEquals(
        List.of(0, 2, 0, 2, 0, 2), java.util.Arrays.stream(rowsPerExpert).boxed().toList());
    // pair i is token i / k: rows 2 and 3 hold token 1
    assertEquals(3f, ex.x()[2 * 2]);
    assertEquals(3f, ex.x()[3 * 2]);

    double[] acc = new double[4];
    ex.accumulate(new float[] {1, 1, 2, 2, 4, 4, 8, 8, 99, 99, 99, 99}, acc);
    assertEquals(0.75 * 1 + 0.25 * 2, acc[0], 1e-12);
    assertEquals(0.5 * 4 + 0.5 * 8, acc[2], 1e-12);

    float[] weighted = FusedRouting.weighted(b, 6);
    assertEquals((float) Math.log(0.75f), weighted[3]);
    assertEquals(Float.NEGATIVE_INFINITY, weighted[0]);
  }

  @Test
  void unknownSettingsAreRefusedByName() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> FusedMoeBenchmark.Settings.parse(new String[] {"modes=fp16"}));
    assertTrue(e.getMessage().contains("fp16"), e.getMessage());
    e =
        assertThrows(
            IllegalArgumentException.class,
            () -> FusedMoeBenchmark.Settings.parse(new String[] {"rows=3"}));
    assertTrue(e.getMessage().contains("rows"), e.getMessage());
    e =
        assertThrows(
            IllegalArgumentException.class,
            () -> FusedMoeBenchmark.Settings.parse(new String[] {"modes=int4:int16"}));
    assertTrue(e.getMessage().contains("int16"), e.getMessage());
  }

  private static String run(String... args) {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    PrintStream ps = new PrintStream(bytes, true, StandardCharsets.UTF_8);
    FusedMoeBenchmark.run(FusedMoeBenchmark.Settings.parse(args), ps);
    return bytes.toString(StandardCharsets.UTF_8);
  }
}
