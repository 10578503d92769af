package dev.pdserve.loadgen.cluster;

import java.util.HashMap;
import java.util.Map;

/**
 * Reads the Prometheus text exposition format far enough for the bench report: every sample's value
 * summed over its labels, by metric name ({@code name_total}, {@code name_sum}, {@code name_count}
 * stay distinct names). Comments and malformed lines are skipped.
 */
public final class PrometheusText {
  private PrometheusText() {}

  public static Map<String, Double> sumByName(String text) {
    Map<String, Double> out = new HashMap<>();
    for (String line : text.split("\n")) {
      line = line.trim();
      if (line.isEmpty() || line.startsWith("#")) {
        continue;
      }
      int brace = line.indexOf('{');
      int space;
      String name;
      if (brace >= 0 && brace < firstSpace(line)) {
        name = line.substring(0, brace);
        int close = line.lastIndexOf('}');
        if (close < 0) {
          continue;
        }
        space = close + 1;
      } else {
        space = firstSpace(line);
        if (space < 0) {
          continue;
        }
        name = line.substring(0, space);
      }
      String[] rest = line.substring(space).trim().split("\\s+");
      if (rest.length == 0 || rest[0].isEmpty()) {
        continue;
      }
      try {
        double v =
            Double.parseDouble(rest[0].replace("+Inf", "Infinity").replace("-Inf", "-Infinity"));
        if (!Double.isNaN(v)) {
          out.merge(name, v, Double::sum);
        }
      } catch (NumberFormatException e) {
        // not a sample line
      }
    }
    return out;
  }

  private static int firstSpace(String line) {
    int s = line.indexOf(' ');
    int t = line.indexOf('\t');
    return s < 0 ? t : t < 0 ? s : Math.min(s, t);
  }
}
