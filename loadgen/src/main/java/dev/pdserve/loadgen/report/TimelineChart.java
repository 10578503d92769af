package dev.pdserve.loadgen.report;

import static dev.pdserve.loadgen.report.Svg.MB;
import static dev.pdserve.loadgen.report.Svg.ML;
import static dev.pdserve.loadgen.report.Svg.MR;
import static dev.pdserve.loadgen.report.Svg.MT;

import dev.pdserve.loadgen.RequestResult;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;

/**
 * The report's request timeline as inline SVG: each request a bar from send to finish, orange until
 * its first token and blue after it, red when it failed.
 */
final class TimelineChart {
  /** At most this many requests are drawn (every k-th when there are more). */
  static final int MAX_REQUESTS = 2000;

  private TimelineChart() {}

  /**
   * Every request (or every k-th of many) as a bar from send to finish, split at the first token.
   */
  static String timeline(List<RequestResult> all) {
    List<RequestResult> rs = new ArrayList<>(all);
    rs.sort(
        Comparator.comparingLong(RequestResult::sendNanos).thenComparingLong(RequestResult::index));
    int step = Math.max(1, (rs.size() + MAX_REQUESTS - 1) / MAX_REQUESTS);
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
