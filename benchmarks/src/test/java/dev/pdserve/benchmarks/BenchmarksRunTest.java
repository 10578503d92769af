package dev.pdserve.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The benchmarks stay runnable: each one's {@code main}, with the smallest parameters, measures
 * every variant it lists and prints its table (a measurement, so no figure is checked).
 */
class BenchmarksRunTest {
  @Test
  void kvTransferBenchmarkMeasuresEverySocketAndFlightVariant() throws Exception {
    String out = stdoutOf(() -> KvTransferBenchmark.main(new String[] {"tiny", "64", "1", "0"}));

    List<String> rows =
        out.lines().filter(l -> l.startsWith("socket:") || l.matches("^[A-J] .*")).toList();
    assertEquals(12, rows.size(), "2 socket and 10 Flight variants (A-J) in:\n" + out);
    Pattern row = Pattern.compile(".*?\\s+(\\d+)\\s+\\d+\\s+\\d+\\s+[\\d.]+\\s+[\\d.]+\\s+\\d+$");
    for (String r : rows) {
      Matcher m = row.matcher(r);
      assertTrue(m.matches(), "a row of median/min/max MB/s, ratio, CPU s/GB, 1 round: " + r);
    }
  }

  @Test
  void kvTransferBenchmarkRunsOnlyTheVariantsAsked() throws Exception {
    String out =
        stdoutOf(() -> KvTransferBenchmark.main(new String[] {"tiny", "64", "1", "0", "SF"}));

    List<String> rows =
        out.lines().filter(l -> l.startsWith("socket:") || l.matches("^[A-J] .*")).toList();
    assertEquals(3, rows.size(), "S (both sockets) and F in:\n" + out);
    assertTrue(rows.get(2).startsWith("F "), rows.toString());
  }

  @Test
  void expertDispatchBenchmarkMeasuresLocalRemoteAndTheStatusFloor() throws Exception {
    String out =
        stdoutOf(() -> ExpertDispatchBenchmark.main(new String[] {"tiny", "20", "1,8", "2"}));

    for (String rows : List.of("1", "8")) {
      for (String backend : List.of("local", "remote")) {
        assertTrue(
            Pattern.compile("(?m)^\\s+" + rows + " " + backend + "\\s").matcher(out).find(),
            rows + " rows " + backend + " in:\n" + out);
      }
    }
    assertTrue(Pattern.compile("(?m)^\\s+- status\\s").matcher(out).find(), out);
    assertTrue(out.contains("failures=0"), "no failed dispatch in:\n" + out);
  }

  private interface Main {
    void run() throws Exception;
  }

  /** What {@code main} printed; System.out is the benchmarks' only output. */
  private static String stdoutOf(Main main) throws Exception {
    PrintStream original = System.out;
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    System.setOut(new PrintStream(bytes, true, StandardCharsets.UTF_8));
    try {
      main.run();
    } finally {
      System.setOut(original);
    }
    return bytes.toString(StandardCharsets.UTF_8);
  }
}
