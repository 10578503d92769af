package dev.pdserve.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The vision encoder benchmark stays runnable: with the smallest image, one run and chunks of 8
 * query patches it measures the small preset's tower and one full-width block, attention whole and
 * chunked, and prints both tables (no time or memory figure is checked: it is a measurement; the
 * chunked features are bit-identical to the whole ones).
 */
class VisionEncoderBenchmarkRunTest {
  @Test
  void measuresTheSmallTowerAndOneFullWidthBlock() {
    PrintStream original = System.out;
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    System.setOut(new PrintStream(bytes, true, StandardCharsets.UTF_8));
    try {
      VisionEncoderBenchmark.main(new String[] {"56", "1", "8"});
    } finally {
      System.setOut(original);
    }
    String out = bytes.toString(StandardCharsets.UTF_8);
    List<String> rows = out.lines().filter(l -> l.startsWith("  56x56 ")).toList();
    assertEquals(4, rows.size(), "two rows (whole, chunked) per table in:\n" + out);
    // 56 x 56: 4 x 4 patches, 2 x 2 tokens; 16 patches: a block of 8 and a last one of 8
    for (int i = 0; i < 4; i += 2) {
      assertTrue(rows.get(i).matches("\\s+56x56\\s+16\\s+4\\s+whole\\s+.*"), rows.get(i));
      assertTrue(
          rows.get(i + 1).matches("\\s+56x56\\s+16\\s+4\\s+chunks of 8\\s+.*\\syes$"),
          rows.get(i + 1));
    }
    assertTrue(out.contains("one block measured"), out);
  }
}
