package dev.pdserve.loadgen.report;

import dev.pdserve.loadgen.BenchSummary;
import dev.pdserve.loadgen.LatencyStats;
import dev.pdserve.loadgen.RequestResult;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import org.HdrHistogram.HistogramIterationValue;

/**
 * A self-contained HTML report (no scripts, styles or fonts from anywhere else): the summary table,
 * latency CDFs of TTFT, ITL and E2E drawn as inline SVG from the histograms, and a request timeline
 * (each request a bar from send to finish, split at its first token).
 */
public final class HtmlReport {
  /** The timeline draws at most this many requests (every k-th when there are more). */
  public static final int TIMELINE_MAX_REQUESTS = 2000;

  private static final int W = 620;
  private static final int H = 340;
  private static final int ML = 64;
  private static final int MR = 20;
  private static final int MT = 34;
  private static final int MB = 50;

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
    h.append(cdf(s.latency.get("ttft"), "Time to first token", "of requests", "#e4572e"))
        .append('\n');
    h.append(cdf(s.latency.get("itl"), "Inter-token latency", "of token gaps", "#17a2b8"))
        .append('\n');
    h.append(cdf(s.latency.get("e2el"), "End-to-end latency", "of requests", "#3b7dd8"))
        .append('\n');
    h.append(cdf(s.latency.get("tpot"), "Time per output token", "of requests", "#8e6bbf"))
        .append('\n');
    h.append("</div>\n<h2>Request timeline</h2>\n");
    h.append(timeline(results)).append('\n');
    h.append(
            "<p class=\"note\">Each bar is one request from the moment it was sent to its last byte; the orange part is the wait for the first token (TTFT), ")
        .append(
            "the blue part the streaming of the rest, red bars failed. Successful requests only are in the latency figures.</p>\n");
    h.append("</body></html>\n");
    return h.toString();
  }

  /** A CDF line chart of one latency metric, with p50/p90/p99 marked. */
  static String cdf(LatencyStats l, String title, String ofWhat, String color) {
    StringBuilder g = new StringBuilder();
    g.append("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"")
        .append(W)
        .append("\" height=\"")
        .append(H)
        .append("\" viewBox=\"0 0 ")
        .append(W)
        .append(' ')
        .append(H)
        .append("\" role=\"img\" aria-label=\"")
        .append(Svg.esc(title))
        .append(" CDF\">");
    g.append("<text x=\"")
        .append(W / 2)
        .append("\" y=\"20\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">")
        .append(Svg.esc(title))
        .append(" — CDF</text>");
    int pw = W - ML - MR;
    int ph = H - MT - MB;
    long total = l.count();
    if (total == 0) {
      g.append("<text x=\"")
          .append(W / 2)
          .append("\" y=\"")
          .append(H / 2)
          .append("\" text-anchor=\"middle\" fill=\"#888\">no samples</text></svg>");
      return g.toString();
    }
    // a long thin tail would squash the body of the curve: past 3x p99.9 the axis stops at 1.5x
    // p99.9
    double maxMs = Math.max(l.maxMs(), 0.001);
    boolean clipped = maxMs > 3 * l.percentileMs(99.9) && l.percentileMs(99.9) > 0;
    if (clipped) {
      maxMs = 1.5 * l.percentileMs(99.9);
    }
    List<Double> xt = Svg.ticks(maxMs, 6);
    double xMax = xt.get(xt.size() - 1);
    axes(g, xt, xMax, pw, ph, "latency (ms)", "% " + ofWhat, true);
    // the curve: a step at every recorded value
    StringBuilder pts = new StringBuilder();
    double x0 = ML;
    double y0 = MT + ph;
    pts.append(Svg.f(x0)).append(',').append(Svg.f(y0));
    double prevY = y0;
    for (HistogramIterationValue v : l.histogram().recordedValues()) {
      double x =
          ML + pw * (l.histogram().highestEquivalentValue(v.getValueIteratedTo()) / 1000.0) / xMax;
      double y = MT + ph * (1 - (double) v.getTotalCountToThisValue() / total);
      pts.append(' ').append(Svg.f(Math.min(x, ML + pw))).append(',').append(Svg.f(prevY));
      pts.append(' ').append(Svg.f(Math.min(x, ML + pw))).append(',').append(Svg.f(y));
      prevY = y;
    }
    g.append("<polyline fill=\"none\" stroke=\"")
        .append(color)
        .append("\" stroke-width=\"2\" points=\"")
        .append(pts)
        .append("\"/>");
    double[] ps = {50, 90, 99};
    for (int i = 0; i < ps.length; i++) {
      double v = l.percentileMs(ps[i]);
      double x = ML + pw * v / xMax;
      double y = MT + ph * (1 - ps[i] / 100);
      g.append("<line x1=\"")
          .append(Svg.f(x))
          .append("\" y1=\"")
          .append(MT + ph)
          .append("\" x2=\"")
          .append(Svg.f(x))
          .append("\" y2=\"")
          .append(Svg.f(y))
          .append("\" stroke=\"#555\" stroke-dasharray=\"3,3\"/>");
      g.append("<circle cx=\"")
          .append(Svg.f(x))
          .append("\" cy=\"")
          .append(Svg.f(y))
          .append("\" r=\"3\" fill=\"#222\"/>");
      boolean left = x > ML + pw * 0.7;
      g.append("<text x=\"")
          .append(Svg.f(left ? x - 6 : x + 6))
          .append("\" y=\"")
          .append(Svg.f(y + 4 + (i == 2 ? 10 : 0)))
          .append("\" font-size=\"11\"")
          .append(left ? " text-anchor=\"end\"" : "")
          .append(">p")
          .append((int) ps[i])
          .append(" ")
          .append(Svg.num(v))
          .append(" ms</text>");
    }
    g.append("<text x=\"")
        .append(W - MR)
        .append("\" y=\"")
        .append(MT - 6)
        .append("\" text-anchor=\"end\" font-size=\"11\" fill=\"#555\">n = ")
        .append(total)
        .append(", mean ")
        .append(Svg.num(l.meanMs()))
        .append(" ms")
        .append(clipped ? ", max " + Svg.num(l.maxMs()) + " ms (off the axis)" : "")
        .append("</text>");
    g.append("</svg>");
    return g.toString();
  }

  private static void axes(
      StringBuilder g,
      List<Double> xt,
      double xMax,
      int pw,
      int ph,
      String xLabel,
      String yLabel,
      boolean percentY) {
    int bottom = MT + ph;
    for (double t : xt) {
      double x = ML + pw * t / xMax;
      g.append("<line x1=\"")
          .append(Svg.f(x))
          .append("\" y1=\"")
          .append(MT)
          .append("\" x2=\"")
          .append(Svg.f(x))
          .append("\" y2=\"")
          .append(bottom)
          .append("\" stroke=\"#eee\"/>");
      g.append("<line x1=\"")
          .append(Svg.f(x))
          .append("\" y1=\"")
          .append(bottom)
          .append("\" x2=\"")
          .append(Svg.f(x))
          .append("\" y2=\"")
          .append(bottom + 5)
          .append("\" stroke=\"#333\"/>");
      g.append("<text x=\"")
          .append(Svg.f(x))
          .append("\" y=\"")
          .append(bottom + 18)
          .append("\" text-anchor=\"middle\" font-size=\"11\">")
          .append(Svg.num(t))
          .append("</text>");
    }
    if (percentY) {
      for (int p = 0; p <= 100; p += 25) {
        double y = MT + ph * (1 - p / 100.0);
        g.append("<line x1=\"")
            .append(ML)
            .append("\" y1=\"")
            .append(Svg.f(y))
            .append("\" x2=\"")
            .append(ML + pw)
            .append("\" y2=\"")
            .append(Svg.f(y))
            .append("\" stroke=\"#eee\"/>");
        g.append("<text x=\"")
            .append(ML - 8)
            .append("\" y=\"")
            .append(Svg.f(y + 4))
            .append("\" text-anchor=\"end\" font-size=\"11\">")
            .append(p)
            .append("%</text>");
      }
    }
    g.append("<line x1=\"")
        .append(ML)
        .append("\" y1=\"")
        .append(bottom)
        .append("\" x2=\"")
        .append(ML + pw)
        .append("\" y2=\"")
        .append(bottom)
        .append("\" stroke=\"#333\"/>");
    g.append("<line x1=\"")
        .append(ML)
        .append("\" y1=\"")
        .append(MT)
        .append("\" x2=\"")
        .append(ML)
        .append("\" y2=\"")
        .append(bottom)
        .append("\" stroke=\"#333\"/>");
    g.append("<text x=\"")
        .append(ML + pw / 2)
        .append("\" y=\"")
        .append(bottom + 38)
        .append("\" text-anchor=\"middle\" font-size=\"12\">")
        .append(Svg.esc(xLabel))
        .append("</text>");
    g.append("<text transform=\"translate(16,")
        .append(MT + ph / 2)
        .append(") rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">")
        .append(Svg.esc(yLabel))
        .append("</text>");
  }

  /**
   * Every request (or every k-th of many) as a bar from send to finish, split at the first token.
   */
  static String timeline(List<RequestResult> all) {
    List<RequestResult> rs = new ArrayList<>(all);
    rs.sort(
        Comparator.comparingLong(RequestResult::sendNanos).thenComparingLong(RequestResult::index));
    int step = Math.max(1, (rs.size() + TIMELINE_MAX_REQUESTS - 1) / TIMELINE_MAX_REQUESTS);
    List<RequestResult> shown = new ArrayList<>();
    for (int i = 0; i < rs.size(); i += step) {
      shown.add(rs.get(i));
    }
    int w = 1240;
    int ph = Math.max(240, Math.min(900, shown.size() * 4));
    int h = ph + MT + MB + 24;
    int pw = w - ML - MR;
    StringBuilder g = new StringBuilder();
    g.append("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"")
        .append(w)
        .append("\" height=\"")
        .append(h)
        .append("\" viewBox=\"0 0 ")
        .append(w)
        .append(' ')
        .append(h)
        .append("\" role=\"img\" aria-label=\"request timeline\">");
    g.append("<text x=\"")
        .append(w / 2)
        .append(
            "\" y=\"20\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">Request timeline")
        .append(
            step > 1
                ? " (every " + step + "th of " + rs.size() + " requests)"
                : " (" + rs.size() + " requests)")
        .append("</text>");
    if (shown.isEmpty()) {
      g.append("<text x=\"")
          .append(w / 2)
          .append("\" y=\"")
          .append(h / 2)
          .append("\" text-anchor=\"middle\" fill=\"#888\">no requests</text></svg>");
      return g.toString();
    }
    double endS = 0;
    for (RequestResult r : shown) {
      endS = Math.max(endS, (r.sendNanos() + r.e2eNanos()) / 1e9);
    }
    List<Double> xt = Svg.ticks(Math.max(endS, 0.001), 10);
    double xMax = xt.get(xt.size() - 1);
    int bottom = MT + ph;
    for (double t : xt) {
      double x = ML + pw * t / xMax;
      g.append("<line x1=\"")
          .append(Svg.f(x))
          .append("\" y1=\"")
          .append(MT)
          .append("\" x2=\"")
          .append(Svg.f(x))
          .append("\" y2=\"")
          .append(bottom)
          .append("\" stroke=\"#eee\"/>");
      g.append("<text x=\"")
          .append(Svg.f(x))
          .append("\" y=\"")
          .append(bottom + 18)
          .append("\" text-anchor=\"middle\" font-size=\"11\">")
          .append(Svg.num(t))
          .append("</text>");
    }
    double bh = (double) ph / shown.size();
    double gap = bh >= 3 ? Math.min(1, bh * 0.2) : 0;
    for (int i = 0; i < shown.size(); i++) {
      RequestResult r = shown.get(i);
      double y = MT + i * bh;
      double xs = ML + pw * (r.sendNanos() / 1e9) / xMax;
      double xe = ML + pw * ((r.sendNanos() + r.e2eNanos()) / 1e9) / xMax;
      double bw = Math.max(0.5, xe - xs);
      String tip =
          "<title>#"
              + r.index()
              + " "
              + Svg.esc(r.status())
              + ": sent "
              + Svg.num(r.sendNanos() / 1e9)
              + " s, TTFT "
              + (r.ttftNanos() < 0 ? "-" : Svg.num(r.ttftNanos() / 1e6) + " ms")
              + ", E2E "
              + Svg.num(r.e2eNanos() / 1e6)
              + " ms, "
              + r.outputTokens()
              + " tokens</title>";
      if (!r.ok()) {
        g.append("<rect x=\"")
            .append(Svg.f(xs))
            .append("\" y=\"")
            .append(Svg.f(y))
            .append("\" width=\"")
            .append(Svg.f(bw))
            .append("\" height=\"")
            .append(Svg.f(Math.max(0.5, bh - gap)))
            .append("\" fill=\"#d62728\">")
            .append(tip)
            .append("</rect>");
        continue;
      }
      double xf = r.ttftNanos() < 0 ? xe : ML + pw * ((r.sendNanos() + r.ttftNanos()) / 1e9) / xMax;
      g.append("<g>").append(tip);
      g.append("<rect x=\"")
          .append(Svg.f(xs))
          .append("\" y=\"")
          .append(Svg.f(y))
          .append("\" width=\"")
          .append(Svg.f(Math.max(0.5, xf - xs)))
          .append("\" height=\"")
          .append(Svg.f(Math.max(0.5, bh - gap)))
          .append("\" fill=\"#f0a030\"/>");
      if (xe > xf) {
        g.append("<rect x=\"")
            .append(Svg.f(xf))
            .append("\" y=\"")
            .append(Svg.f(y))
            .append("\" width=\"")
            .append(Svg.f(Math.max(0.5, xe - xf)))
            .append("\" height=\"")
            .append(Svg.f(Math.max(0.5, bh - gap)))
            .append("\" fill=\"#3b7dd8\"/>");
      }
      if (bh >= 3) {
        g.append("<line x1=\"")
            .append(Svg.f(xf))
            .append("\" y1=\"")
            .append(Svg.f(y))
            .append("\" x2=\"")
            .append(Svg.f(xf))
            .append("\" y2=\"")
            .append(Svg.f(y + bh - gap))
            .append("\" stroke=\"#222\" stroke-width=\"1\"/>");
      }
      g.append("</g>");
    }
    g.append("<line x1=\"")
        .append(ML)
        .append("\" y1=\"")
        .append(bottom)
        .append("\" x2=\"")
        .append(ML + pw)
        .append("\" y2=\"")
        .append(bottom)
        .append("\" stroke=\"#333\"/>");
    g.append("<line x1=\"")
        .append(ML)
        .append("\" y1=\"")
        .append(MT)
        .append("\" x2=\"")
        .append(ML)
        .append("\" y2=\"")
        .append(bottom)
        .append("\" stroke=\"#333\"/>");
    g.append("<text x=\"")
        .append(ML + pw / 2)
        .append("\" y=\"")
        .append(bottom + 38)
        .append(
            "\" text-anchor=\"middle\" font-size=\"12\">time since the start of the run (s)</text>");
    g.append("<text transform=\"translate(20,")
        .append(MT + ph / 2)
        .append(
            ") rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">requests, in send order</text>");
    int ly = h - 12;
    for (Map.Entry<String, String> e :
        List.of(
            Map.entry("#f0a030", "waiting for the first token (TTFT)"),
            Map.entry("#3b7dd8", "streaming the rest"),
            Map.entry("#d62728", "failed"))) {
      int lx = ML + (e.getKey().equals("#f0a030") ? 0 : e.getKey().equals("#3b7dd8") ? 260 : 420);
      g.append("<rect x=\"")
          .append(lx)
          .append("\" y=\"")
          .append(ly - 10)
          .append("\" width=\"14\" height=\"10\" fill=\"")
          .append(e.getKey())
          .append("\"/>");
      g.append("<text x=\"")
          .append(lx + 20)
          .append("\" y=\"")
          .append(ly)
          .append("\" font-size=\"12\">")
          .append(Svg.esc(e.getValue()))
          .append("</text>");
    }
    g.append("</svg>");
    return g.toString();
  }
}
