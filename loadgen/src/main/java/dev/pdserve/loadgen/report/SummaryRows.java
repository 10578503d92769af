package dev.pdserve.loadgen.report;

import dev.pdserve.loadgen.BenchSummary;
import dev.pdserve.loadgen.LatencyStats;
import dev.pdserve.loadgen.cluster.ClusterReport;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The summary as titled sections of label/value rows, rendered as text ({@link #print}) or HTML.
 */
public final class SummaryRows {
  /** One section of the table. */
  public record Section(String title, List<String[]> rows) {}

  private static final Map<String, String[]> TITLES =
      Map.of(
          "ttft", new String[] {"Time to First Token", "TTFT"},
          "tpot", new String[] {"Time per Output Token (excl. 1st token)", "TPOT"},
          "itl", new String[] {"Inter-token Latency", "ITL"},
          "e2el", new String[] {"End-to-end Latency", "E2EL"});

  private SummaryRows() {}

  public static List<Section> of(BenchSummary s, List<Double> percentiles, ClusterReport cluster) {
    List<Section> out = new ArrayList<>();
    List<String[]> main = new ArrayList<>();
    main.add(row("Successful requests:", Long.toString(s.completed)));
    main.add(row("Failed requests:", Long.toString(s.failed)));
    Object mc = s.meta.get("max_concurrency");
    if (s.meta.containsKey("max_concurrency")) {
      main.add(row("Maximum request concurrency:", mc == null ? "None" : mc.toString()));
    }
    if (s.meta.containsKey("request_rate")) {
      main.add(row("Request rate configured (RPS):", fmtObj(s.meta.get("request_rate"))));
    }
    if (s.meta.get("images_per_request") != null) {
      main.add(row("Images per request:", String.valueOf(s.meta.get("images_per_request"))));
      main.add(row("Image size (px):", String.valueOf(s.meta.get("image_size"))));
    }
    if (s.runs > 1) {
      main.add(row("Merged runs:", Integer.toString(s.runs)));
    }
    main.add(row("Benchmark duration (s):", f(s.durationSeconds)));
    main.add(row("Total input tokens:", Long.toString(s.totalInputTokens)));
    main.add(row("Total generated tokens:", Long.toString(s.totalOutputTokens)));
    main.add(row("Request throughput (req/s):", f(s.requestThroughput())));
    if (s.requestGoodput() != null) {
      main.add(row("Request goodput (req/s):", f(s.requestGoodput())));
    }
    main.add(row("Output token throughput (tok/s):", f(s.outputThroughput())));
    main.add(row("Input token throughput (tok/s):", f(s.inputThroughput())));
    main.add(row("Total Token throughput (tok/s):", f(s.totalTokenThroughput())));
    out.add(new Section("Serving Benchmark Result", main));
    for (String m : BenchSummary.METRICS) {
      LatencyStats l = s.latency.get(m);
      String abbr = TITLES.get(m)[1];
      List<String[]> rows = new ArrayList<>();
      rows.add(row("Mean " + abbr + " (ms):", f(l.meanMs())));
      rows.add(row("Median " + abbr + " (ms):", f(l.percentileMs(50))));
      for (double p : BenchSummary.allPercentiles(percentiles)) {
        if (p != 50) {
          rows.add(
              row(
                  "P" + BenchSummary.percentileKey(p).substring(1) + " " + abbr + " (ms):",
                  f(l.percentileMs(p))));
        }
      }
      out.add(new Section(TITLES.get(m)[0], rows));
    }
    if (!s.failures.isEmpty()) {
      List<String[]> rows = new ArrayList<>();
      s.failures.forEach((k, v) -> rows.add(row(k + ":", Long.toString(v))));
      out.add(new Section("Failures by status", rows));
    }
    if (cluster != null) {
      List<String[]> rows = new ArrayList<>();
      if (cluster.before().error() != null) {
        rows.add(row("Nodes:", "unavailable (" + cluster.before().error() + ")"));
      } else {
        rows.add(row("Active nodes before:", roles(ClusterReport.perRole(cluster.before(), true))));
        rows.add(row("Active nodes after:", roles(ClusterReport.perRole(cluster.after(), true))));
      }
      for (ClusterReport.Figure fig : cluster.figures()) {
        rows.add(
            row(
                fig.label() + ":",
                fig.value() != null
                    ? (fig.key().endsWith("bytes") ? bytes(fig.value()) : f(fig.value()))
                    : "unavailable (" + fig.unavailable() + ")"));
      }
      out.add(new Section("Cluster during the run", rows));
    }
    return out;
  }

  /** Prints the table the way {@code vllm bench serve} does. */
  public static void print(List<Section> sections, PrintWriter out) {
    boolean first = true;
    for (Section sec : sections) {
      out.println(center(sec.title(), first ? '=' : '-'));
      first = false;
      for (String[] r : sec.rows()) {
        out.printf("%-40s %s%n", r[0], r[1]);
      }
    }
    out.println("=".repeat(50));
    out.flush();
  }

  private static String center(String title, char fill) {
    String t = " " + title + " ";
    if (t.length() >= 50) {
      return t;
    }
    int left = (50 - t.length()) / 2;
    return String.valueOf(fill).repeat(left)
        + t
        + String.valueOf(fill).repeat(50 - t.length() - left);
  }

  private static String roles(Map<String, Integer> m) {
    if (m.isEmpty()) {
      return "none";
    }
    StringBuilder sb = new StringBuilder();
    m.forEach((k, v) -> sb.append(sb.length() == 0 ? "" : ", ").append(k).append(' ').append(v));
    return sb.toString();
  }

  private static String[] row(String label, String value) {
    return new String[] {label, value};
  }

  static String f(double v) {
    return String.format(Locale.ROOT, "%.2f", v);
  }

  private static String fmtObj(Object o) {
    return o instanceof Number n ? f(n.doubleValue()) : String.valueOf(o);
  }

  static String bytes(double b) {
    String[] u = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (Math.abs(b) >= 1024 && i < u.length - 1) {
      b /= 1024;
      i++;
    }
    return String.format(Locale.ROOT, i == 0 ? "%.0f %s" : "%.2f %s", b, u[i]);
  }
}
