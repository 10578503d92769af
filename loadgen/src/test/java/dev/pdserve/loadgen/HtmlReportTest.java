package dev.pdserve.loadgen;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.loadgen.report.CsvReport;
import dev.pdserve.loadgen.report.HtmlReport;
import dev.pdserve.loadgen.report.SummaryRows;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The reports: a self-contained HTML page with SVG charts, the text table, the CSV. */
class HtmlReportTest {
  @Test
  void htmlIsSelfContainedWithCdfsTimelineAndTable(@TempDir Path tmp) throws Exception {
    List<RequestResult> rs = BenchSummaryMergeTest.results(300, 3, 0);
    BenchSummary s = BenchSummary.of(rs, 0, 3.0, Map.of());
    s.meta.put("target", "grpc 127.0.0.1:1 <test>");
    List<SummaryRows.Section> table = SummaryRows.of(s, List.of(99.9), null);
    Path f = tmp.resolve("r.html");
    HtmlReport.write(f, s, table, rs);
    String html = Files.readString(f);
    assertTrue(html.startsWith("<!DOCTYPE html>"));
    assertEquals(5, count(html, "<svg "), "4 CDFs (TTFT, ITL, E2E, TPOT) and the timeline");
    for (String title :
        List.of(
            "Time to first token",
            "Inter-token latency",
            "End-to-end latency",
            "Request timeline")) {
      assertTrue(html.contains(title), title);
    }
    assertTrue(
        html.contains("latency (ms)") && html.contains("time since the start of the run (s)"),
        "axes are labelled with units");
    assertTrue(html.contains("<polyline"), "CDF curves");
    assertTrue(count(html, "fill=\"#d62728\">") >= 8, "failed requests drawn red");
    assertTrue(html.contains("P99.9 TTFT (ms)"), "summary table with the requested percentile");
    assertTrue(html.contains("&lt;test&gt;"), "text is escaped");
    assertFalse(
        Pattern.compile("<script|<link|src=|@import|url\\(", Pattern.CASE_INSENSITIVE)
            .matcher(html)
            .find(),
        "nothing loaded from elsewhere");
    // the only URL is the SVG namespace
    Matcher m = Pattern.compile("https?://[^\"]+").matcher(html);
    while (m.find()) {
      assertEquals("http://www.w3.org/2000/svg", m.group());
    }
  }

  @Test
  void textTableLooksLikeVllmsAndCsvHasARowPerRequest(@TempDir Path tmp) throws Exception {
    List<RequestResult> rs = BenchSummaryMergeTest.results(50, 4, 0);
    BenchSummary s = BenchSummary.of(rs, 0, 2.0, Map.of("e2el", 500.0));
    StringWriter w = new StringWriter();
    SummaryRows.print(SummaryRows.of(s, List.of(), null), new PrintWriter(w));
    String t = w.toString();
    for (String row :
        List.of(
            "Successful requests:",
            "Benchmark duration (s):",
            "Request goodput (req/s):",
            "Mean TTFT (ms):",
            "P99 ITL (ms):",
            "Median E2EL (ms):",
            "Failures by status")) {
      assertTrue(t.contains(row), row + " in\n" + t);
    }
    Path csv = tmp.resolve("r.csv");
    CsvReport.write(csv, rs);
    List<String> lines = Files.readAllLines(csv);
    assertEquals(CsvReport.HEADER, lines.get(0));
    assertEquals(51, lines.size());
    assertEquals(15, lines.get(1).split(",", -1).length);
  }

  private static int count(String s, String sub) {
    int n = 0;
    for (int i = s.indexOf(sub); i >= 0; i = s.indexOf(sub, i + 1)) {
      n++;
    }
    return n;
  }
}
