package dev.pdserve.loadgen.report;

import dev.pdserve.loadgen.BenchSummary;
import dev.pdserve.loadgen.RequestResult;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * A self-contained HTML report (no scripts, styles or fonts from anywhere else): the summary table,
 * latency CDFs of TTFT, ITL and E2E drawn as inline SVG from the histograms ({@link CdfChart}), and
 * a request timeline (each request a bar from send to finish, split at its first token: {@link
 * TimelineChart}).
 */
public final class HtmlReport {
  /** The timeline draws at most this many requests (every k-th when there are more). */
  public static final int TIMELINE_MAX_REQUESTS = TimelineChart.MAX_REQUESTS;

  private HtmlReport() {}

  public static void write(
      Path file, BenchSummary s, List<SummaryRows.Section> table, List<RequestResult> results)
      throws IOException {
    Files.writeString(file, render(s, table, results), StandardCharsets.UTF_8);
  }

  public static String render(
      BenchSummary s, List<SummaryRows.Section> table, List<RequestResult> results) {
    StringBuilder h = new StringBuilder(64 * 1024);
    h.append(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>pdserve bench report</title>\n<style>\n")
        .append(
            "body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fff}")
        .append(
            "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}")
        .append(".meta{color:#555;font-size:13px;margin-bottom:12px}.meta span{margin-right:18px}")
        .append(
            ".tables{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}table{border-collapse:collapse;font-size:13px}")
        .append(
            "th{background:#f3f5f8;text-align:left;padding:5px 10px;border:1px solid #dde}td{padding:3px 10px;border:1px solid #e4e6ea}")
        .append(
            "td.v{text-align:right;font-variant-numeric:tabular-nums}.charts{display:flex;flex-wrap:wrap;gap:16px}")
        .append(
            "svg{background:#fff;border:1px solid #e4e6ea}svg text{font-family:inherit}.note{color:#666;font-size:12px}\n</style></head><body>\n");
    h.append("<h1>pdserve bench report</h1>\n<div class=\"meta\">");
    for (String k :
        List.of(
            "date",
            "backend",
            "target",
            "model",
            "dataset",
            "seed",
            "request_rate",
            "burstiness",
            "max_concurrency",
            "workers")) {
      if (s.meta.get(k) != null) {
        h.append("<span><b>")
            .append(Svg.esc(k))
            .append("</b>: ")
            .append(Svg.esc(String.valueOf(s.meta.get(k))))
            .append("</span>");
      }
    }
    h.append("</div>\n<h2>Summary</h2>\n<div class=\"tables\">\n");
    for (SummaryRows.Section sec : table) {
      h.append("<table><tr><th colspan=\"2\">").append(Svg.esc(sec.title())).append("</th></tr>\n");
      for (String[] r : sec.rows()) {
        h.append("<tr><td>")
            .append(Svg.esc(r[0]))
            .append("</td><td class=\"v\">")
            .append(Svg.esc(r[1]))
            .append("</td></tr>\n");
      }
      h.append("</table>\n");
    }
    h.append("</div>\n<h2>Latency distributions (CDF)</h2>\n<div class=\"charts\">\n");
    h.append(CdfChart.cdf(s.latency.get("ttft"), "Time to first token", "of requests", "#e4572e"))
        .append('\n');
    h.append(CdfChart.cdf(s.latency.get("itl"), "Inter-token latency", "of token gaps", "#17a2b8"))
        .append('\n');
    h.append(CdfChart.cdf(s.latency.get("e2el"), "End-to-end latency", "of requests", "#3b7dd8"))
        .append('\n');
    h.append(CdfChart.cdf(s.latency.get("tpot"), "Time per output token", "of requests", "#8e6bbf"))
        .append('\n');
    h.append("</div>\n<h2>Request timeline</h2>\n");
    h.append(TimelineChart.timeline(results)).append('\n');
    h.append(
            "<p class=\"note\">Each bar is one request from the moment it was sent to its last byte; the orange part is the wait for the first token (TTFT), ")
        .append(
            "the blue part the streaming of the rest, red bars failed. Successful requests only are in the latency figures.</p>\n");
    h.append("</body></html>\n");
    return h.toString();
  }
}
