package dev.pdserve.loadgen.report;

import static dev.pdserve.loadgen.report.Svg.MB;
import static dev.pdserve.loadgen.report.Svg.ML;
import static dev.pdserve.loadgen.report.Svg.MR;
import static dev.pdserve.loadgen.report.Svg.MT;

import dev.pdserve.loadgen.LatencyStats;
import java.util.List;
import org.HdrHistogram.HistogramIterationValue;

/**
 * The report's latency charts: one metric's CDF as an inline SVG line chart, drawn from its
 * histogram.
 */
final class CdfChart {
  private static final int W = 620;
  private static final int H = 340;

  private CdfChart() {}

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
}
