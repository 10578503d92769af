package dev.pdserve.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The vision encoder benchmark stays runnable: with the smallest image and one run it measures the
 * small preset's tower and one full-width block, and prints both tables (no figure is checked: it
 * is a measurement).
 */
class VisionEncoderBenchmarkRunTest {
  @Test
  void measuresTheSmallTowerAndOneFullWidthBlock() {
    PrintStream original = System.out;
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    System.setOut(new PrintStream(bytes, true, StandardCharsets.UTF_8));
    try {
      VisionEncoderBenchmark.main(new String[] {"56", "1"});
    } finally {
      System.setOut(original);
    }
    String out = bytes.toString(StandardCharsets.UTF_8);
    List<String> rows = out.lines().filter(l -> l.startsWith("  56x56 ")).toList();
    assertEquals(2, rows.size(), "one row per table in:\n" + out);
    // 56 x 56: 4 x 4 patches, 2 x 2 tokens; 16 patches² x heads x 4 bytes of scores
    assertTrue(rows.get(0).matches("\\s+56x56\\s+16\\s+4\\s+.*"), rows.get(0));
    assertTrue(rows.get(1).matches("\\s+56x56\\s+16\\s+4\\s+.*"), rows.get(1));
    assertTrue(out.contains("one block measured"), out);
  }
}
