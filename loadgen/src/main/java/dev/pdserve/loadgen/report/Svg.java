package dev.pdserve.loadgen.report;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** Small helpers for drawing charts as inline SVG: axis ticks, number formats, escaping. */
final class Svg {
  // Plot margins every chart shares (room for the title, the ticks and the axis labels), in px.
  static final int ML = 64; // left
  static final int MR = 20; // right
  static final int MT = 34; // top
  static final int MB = 50; // bottom

  private Svg() {}

  /** A "nice" tick step (1, 2 or 5 × 10^k) giving about {@code ticks} ticks over {@code range}. */
  static double niceStep(double range, int ticks) {
    if (!(range > 0)) {
      return 1;
    }
    double raw = range / ticks;
    double mag = Math.pow(10, Math.floor(Math.log10(raw)));
    double norm = raw / mag;
    double step = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
    return step * mag;
  }

  /** Tick values from 0 to at least {@code max}. */
  static List<Double> ticks(double max, int count) {
    double step = niceStep(max, count);
    List<Double> t = new ArrayList<>();
    for (double v = 0; v <= max + step * 1e-9; v += step) {
      t.add(v);
    }
    if (t.get(t.size() - 1) < max) {
      t.add(t.get(t.size() - 1) + step);
    }
    return t;
  }

  static String num(double v) {
    if (v == Math.rint(v) && Math.abs(v) < 1e15) {
      return Long.toString((long) v);
    }
    double a = Math.abs(v);
    return String.format(Locale.ROOT, a >= 10 ? "%.1f" : a >= 1 ? "%.2f" : "%.3f", v);
  }

  static String f(double v) {
    return String.format(Locale.ROOT, "%.1f", v);
  }

  static String esc(String s) {
    return s.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\"", "&quot;");
  }
}
