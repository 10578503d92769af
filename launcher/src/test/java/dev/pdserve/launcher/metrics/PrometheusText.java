package dev.pdserve.launcher.metrics;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;

/**
 * A strict parser of the Prometheus text exposition format (version 0.0.4), for tests: every sample
 * belongs to a family declared by {@code # TYPE} before it (with a name the type allows: {@code
 * _total} for counters, {@code _bucket}/{@code _count}/{@code _sum} for histograms), label sets are
 * well formed and not repeated, values parse, and every histogram's buckets are cumulative
 * (non-decreasing in {@code le}, ending at {@code +Inf} whose count equals {@code _count}). Any
 * violation throws {@link IllegalArgumentException} naming the line.
 */
public final class PrometheusText {
  /** One sample line. */
  public record Sample(String name, Map<String, String> labels, double value) {}

  /** A metric family: its {@code # TYPE}, {@code # HELP} and samples. */
  public record Family(String name, String type, String help, List<Sample> samples) {}

  private final Map<String, Family> families;

  private PrometheusText(Map<String, Family> families) {
    this.families = families;
  }

  public Map<String, Family> families() {
    return families;
  }

  /** The family {@code name}; fails naming the families there are if it is missing. */
  public Family family(String name) {
    Family f = families.get(name);
    if (f == null) {
      throw new AssertionError("no metric family " + name + "; families: " + families.keySet());
    }
    return f;
  }

  /** Sum of every sample named {@code sampleName} whose labels include {@code labels}. */
  public double sum(String sampleName, Map<String, String> labels) {
    double total = 0;
    boolean found = false;
    for (Family f : families.values()) {
      for (Sample s : f.samples()) {
        if (s.name().equals(sampleName) && s.labels().entrySet().containsAll(labels.entrySet())) {
          total += s.value();
          found = true;
        }
      }
    }
    if (!found) {
      throw new AssertionError("no sample " + sampleName + " with labels " + labels);
    }
    return total;
  }

  public double sum(String sampleName) {
    return sum(sampleName, Map.of());
  }

  public static PrometheusText parse(String text) {
    Map<String, Family> families = new LinkedHashMap<>();
    Map<String, String> helps = new LinkedHashMap<>();
    Map<String, List<Sample>> samples = new LinkedHashMap<>();
    Map<String, String> types = new LinkedHashMap<>();
    Set<String> seen = new HashSet<>();
    String[] lines = text.split("\n", -1);
    if (!text.isEmpty() && !text.endsWith("\n")) {
      throw new IllegalArgumentException("exposition does not end with a newline");
    }
    for (int i = 0; i < lines.length; i++) {
      String line = lines[i];
      int n = i + 1;
      if (line.isEmpty()) {
        continue;
      }
      try {
        if (line.startsWith("#")) {
          String[] parts = line.split(" ", 4);
          if (parts.length >= 3 && parts[1].equals("HELP")) {
            checkName(parts[2]);
            if (helps.put(parts[2], parts.length == 4 ? parts[3] : "") != null) {
              throw new IllegalArgumentException("second HELP for " + parts[2]);
            }
          } else if (parts.length >= 3 && parts[1].equals("TYPE")) {
            checkName(parts[2]);
            if (parts.length != 4
                || !List.of("counter", "gauge", "histogram", "summary", "untyped")
                    .contains(parts[3])) {
              throw new IllegalArgumentException("bad TYPE line");
            }
            if (types.put(parts[2], parts[3]) != null) {
              throw new IllegalArgumentException("second TYPE for " + parts[2]);
            }
            samples.put(parts[2], new ArrayList<>());
          }
          continue; // other comments are allowed
        }
        Sample s = sample(line);
        String family = familyOf(s.name(), types);
        if (family == null) {
          throw new IllegalArgumentException("sample " + s.name() + " has no # TYPE before it");
        }
        if (!seen.add(s.name() + s.labels())) {
          throw new IllegalArgumentException("repeated series " + s.name() + s.labels());
        }
        samples.get(family).add(s);
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("line " + n + " '" + line + "': " + e.getMessage(), e);
      }
    }
    for (var e : types.entrySet()) {
      Family f =
          new Family(
              e.getKey(),
              e.getValue(),
              helps.getOrDefault(e.getKey(), ""),
              List.copyOf(samples.get(e.getKey())));
      if (f.type().equals("histogram")) {
        checkHistogram(f);
      }
      families.put(f.name(), f);
    }
    return new PrometheusText(families);
  }

  private static String familyOf(String sample, Map<String, String> types) {
    String type = types.get(sample);
    if (type != null && !type.equals("histogram") && !type.equals("summary")) {
      return sample;
    }
    for (String suffix : List.of("_total", "_created", "_bucket", "_count", "_sum")) {
      if (sample.endsWith(suffix)) {
        String base = sample.substring(0, sample.length() - suffix.length());
        String t = types.get(base);
        if (t == null) {
          continue;
        }
        boolean allowed =
            switch (t) {
              case "counter" -> suffix.equals("_total") || suffix.equals("_created");
              case "histogram" -> !suffix.equals("_total");
              case "summary" ->
                  suffix.equals("_count") || suffix.equals("_sum") || suffix.equals("_created");
              default -> false;
            };
        if (allowed) {
          return base;
        }
      }
    }
    if (type != null && type.equals("summary")) {
      return sample;
    }
    return null;
  }

  private static void checkHistogram(Family f) {
    Map<Map<String, String>, TreeMap<Double, Double>> buckets = new LinkedHashMap<>();
    Map<Map<String, String>, Double> counts = new LinkedHashMap<>();
    for (Sample s : f.samples()) {
      if (s.name().equals(f.name() + "_bucket")) {
        String le = s.labels().get("le");
        if (le == null) {
          throw new IllegalArgumentException(
              "histogram " + f.name() + " bucket without le: " + s.labels());
        }
        Map<String, String> key = new TreeMap<>(s.labels());
        key.remove("le");
        double bound = parseValue(le);
        TreeMap<Double, Double> b = buckets.computeIfAbsent(key, k -> new TreeMap<>());
        double prevMax = b.isEmpty() ? Double.NEGATIVE_INFINITY : b.lastKey();
        if (bound <= prevMax) {
          throw new IllegalArgumentException(
              "histogram " + f.name() + key + ": bucket le=" + le + " out of order");
        }
        if (!b.isEmpty() && s.value() < b.lastEntry().getValue()) {
          throw new IllegalArgumentException(
              "histogram "
                  + f.name()
                  + key
                  + ": bucket le="
                  + le
                  + " count "
                  + s.value()
                  + " below the previous one");
        }
        b.put(bound, s.value());
      } else if (s.name().equals(f.name() + "_count")) {
        counts.put(new TreeMap<>(s.labels()), s.value());
      }
    }
    if (buckets.isEmpty()) {
      return; // a labelled histogram without series yet
    }
    for (var e : buckets.entrySet()) {
      TreeMap<Double, Double> b = e.getValue();
      if (b.lastKey() != Double.POSITIVE_INFINITY) {
        throw new IllegalArgumentException(
            "histogram " + f.name() + e.getKey() + " has no +Inf bucket");
      }
      Double count = counts.get(e.getKey());
      if (count == null || !Objects.equals(count, b.lastEntry().getValue())) {
        throw new IllegalArgumentException(
            "histogram "
                + f.name()
                + e.getKey()
                + ": +Inf bucket "
                + b.lastEntry().getValue()
                + " != _count "
                + count);
      }
    }
  }

  private static Sample sample(String line) {
    int i = 0;
    while (i < line.length() && line.charAt(i) != '{' && line.charAt(i) != ' ') {
      i++;
    }
    String name = line.substring(0, i);
    checkName(name);
    Map<String, String> labels = new LinkedHashMap<>();
    if (i < line.length() && line.charAt(i) == '{') {
      i++;
      while (line.charAt(i) != '}') {
        int eq = line.indexOf('=', i);
        if (eq < 0) {
          throw new IllegalArgumentException("label without '='");
        }
        String label = line.substring(i, eq);
        if (!label.matches("[a-zA-Z_][a-zA-Z0-9_]*")) {
          throw new IllegalArgumentException("bad label name '" + label + "'");
        }
        i = eq + 1;
        if (line.charAt(i) != '"') {
          throw new IllegalArgumentException("label value of " + label + " not quoted");
        }
        i++;
        StringBuilder v = new StringBuilder();
        while (line.charAt(i) != '"') {
          char c = line.charAt(i);
          if (c == '\\') {
            char next = line.charAt(++i);
            switch (next) {
              case '\\' -> v.append('\\');
              case '"' -> v.append('"');
              case 'n' -> v.append('\n');
              default -> throw new IllegalArgumentException("bad escape \\" + next);
            }
          } else {
            v.append(c);
          }
          i++;
        }
        i++;
        if (labels.put(label, v.toString()) != null) {
          throw new IllegalArgumentException("label " + label + " twice");
        }
        if (line.charAt(i) == ',') {
          i++;
        } else if (line.charAt(i) != '}') {
          throw new IllegalArgumentException("expected ',' or '}' after label " + label);
        }
      }
      i++;
    }
    if (i >= line.length() || line.charAt(i) != ' ') {
      throw new IllegalArgumentException("no value");
    }
    String[] rest = line.substring(i + 1).split(" ");
    if (rest.length < 1 || rest.length > 2) {
      throw new IllegalArgumentException("expected a value and an optional timestamp");
    }
    if (rest.length == 2) {
      Long.parseLong(rest[1]);
    }
    return new Sample(name, Map.copyOf(labels), parseValue(rest[0]));
  }

  private static double parseValue(String v) {
    return switch (v) {
      case "+Inf" -> Double.POSITIVE_INFINITY;
      case "-Inf" -> Double.NEGATIVE_INFINITY;
      case "NaN" -> Double.NaN;
      default -> {
        try {
          yield Double.parseDouble(v);
        } catch (NumberFormatException e) {
          throw new IllegalArgumentException("bad value '" + v + "'");
        }
      }
    };
  }

  private static void checkName(String name) {
    if (!name.matches("[a-zA-Z_:][a-zA-Z0-9_:]*")) {
      throw new IllegalArgumentException("bad metric name '" + name + "'");
    }
  }
}
