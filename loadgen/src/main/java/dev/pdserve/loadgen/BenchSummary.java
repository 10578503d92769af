package dev.pdserve.loadgen;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * The figures of one run (or of several merged runs): counts, token totals, the four latency
 * metrics as histograms, failures by status, goodput. JSON keys follow {@code vllm bench serve}
 * ({@code mean_ttft_ms}, {@code p99_itl_ms}, {@code request_throughput}, ...); the encoded
 * histograms travel along so that {@link #merge} can combine runs exactly.
 */
public final class BenchSummary {
  /** The latency metrics, by their JSON key. */
  public static final List<String> METRICS = List.of("ttft", "tpot", "itl", "e2el");

  /** Goodput SLO keys. */
  public static final List<String> SLO_KEYS = List.of("ttft", "tpot", "e2el");

  public static final int FORMAT_VERSION = 1;

  public final Map<String, Object> meta = new LinkedHashMap<>();
  public final Map<String, LatencyStats> latency = new LinkedHashMap<>();
  public final Map<String, Long> failures = new TreeMap<>();
  public final Map<String, Double> goodputSlosMs = new LinkedHashMap<>();
  public long completed;
  public long failed;
  public long totalInputTokens;
  public long totalOutputTokens;
  public long cachedTokens;
  public long goodRequests;
  public long startedAtMs;
  public long finishedAtMs;
  public double durationSeconds;
  public int runs = 1;

  public BenchSummary() {
    for (String m : METRICS) {
      latency.put(m, new LatencyStats());
    }
  }

  /**
   * Builds the summary of {@code results} measured over {@code durationSeconds} starting at {@code
   * startedAtMs}.
   */
  public static BenchSummary of(
      Collection<RequestResult> results,
      long startedAtMs,
      double durationSeconds,
      Map<String, Double> goodputSlosMs) {
    BenchSummary s = new BenchSummary();
    s.startedAtMs = startedAtMs;
    s.durationSeconds = durationSeconds;
    s.finishedAtMs = startedAtMs + Math.round(durationSeconds * 1000);
    s.goodputSlosMs.putAll(goodputSlosMs);
    for (RequestResult r : results) {
      s.add(r);
    }
    return s;
  }

  private void add(RequestResult r) {
    if (!r.ok()) {
      failed++;
      failures.merge(r.status(), 1L, Long::sum);
      return;
    }
    completed++;
    totalInputTokens += r.promptTokens();
    totalOutputTokens += r.outputTokens();
    cachedTokens += r.cachedTokens();
    if (r.ttftNanos() >= 0) {
      latency.get("ttft").recordNanos(r.ttftNanos());
    }
    long tpot = r.tpotNanos();
    if (tpot >= 0) {
      latency.get("tpot").recordNanos(tpot);
    }
    for (long itl : r.itlNanos()) {
      latency.get("itl").recordNanos(itl);
    }
    latency.get("e2el").recordNanos(r.e2eNanos());
    if (meetsSlos(r)) {
      goodRequests++;
    }
  }

  private boolean meetsSlos(RequestResult r) {
    for (Map.Entry<String, Double> slo : goodputSlosMs.entrySet()) {
      double limit = slo.getValue();
      double v =
          switch (slo.getKey()) {
            case "ttft" -> r.ttftNanos() / 1e6;
            case "tpot" -> r.tpotNanos() < 0 ? 0 : r.tpotNanos() / 1e6;
            case "e2el" -> r.e2eNanos() / 1e6;
            default -> throw new IllegalArgumentException("unknown goodput SLO " + slo.getKey());
          };
      if (v < 0 || v > limit) {
        return false;
      }
    }
    return true;
  }

  public long requests() {
    return completed + failed;
  }

  public double requestThroughput() {
    return durationSeconds > 0 ? completed / durationSeconds : 0;
  }

  public double outputThroughput() {
    return durationSeconds > 0 ? totalOutputTokens / durationSeconds : 0;
  }

  public double inputThroughput() {
    return durationSeconds > 0 ? totalInputTokens / durationSeconds : 0;
  }

  public double totalTokenThroughput() {
    return durationSeconds > 0 ? (totalInputTokens + totalOutputTokens) / durationSeconds : 0;
  }

  /** Requests per second that met every goodput SLO, or null when no SLO was given. */
  public Double requestGoodput() {
    return goodputSlosMs.isEmpty()
        ? null
        : durationSeconds > 0 ? goodRequests / durationSeconds : 0.0;
  }

  /** The JSON key word for a percentile, as vLLM writes it: 99 → "p99", 99.9 → "p99.9". */
  public static String percentileKey(double p) {
    return p == Math.rint(p) ? "p" + (long) p : "p" + p;
  }

  /** Every figure as JSON (vLLM key names), plus the encoded histograms. */
  public ObjectNode toJson(ObjectMapper json, List<Double> percentiles) {
    ObjectNode o = json.createObjectNode();
    o.put("format", "pdserve-bench");
    o.put("format_version", FORMAT_VERSION);
    meta.forEach((k, v) -> o.set(k, json.valueToTree(v)));
    o.put("runs", runs);
    o.put("started_at_ms", startedAtMs);
    o.put("finished_at_ms", finishedAtMs);
    o.put("duration", durationSeconds);
    o.put("num_requests", requests());
    o.put("completed", completed);
    o.put("failed", failed);
    o.set("failures", json.valueToTree(failures));
    o.put("total_input_tokens", totalInputTokens);
    o.put("total_output_tokens", totalOutputTokens);
    o.put("cached_tokens", cachedTokens);
    o.put("request_throughput", requestThroughput());
    o.put("input_throughput", inputThroughput());
    o.put("output_throughput", outputThroughput());
    o.put("total_token_throughput", totalTokenThroughput());
    o.set("goodput_slos_ms", json.valueToTree(goodputSlosMs));
    o.put("good_requests", goodRequests);
    if (requestGoodput() == null) {
      o.putNull("request_goodput");
    } else {
      o.put("request_goodput", requestGoodput());
    }
    List<Double> ps = allPercentiles(percentiles);
    o.set("percentiles", json.valueToTree(ps));
    for (String m : METRICS) {
      LatencyStats s = latency.get(m);
      o.put("count_" + m, s.count());
      o.put("mean_" + m + "_ms", s.meanMs());
      o.put("median_" + m + "_ms", s.percentileMs(50));
      o.put("std_" + m + "_ms", s.stdMs());
      o.put("max_" + m + "_ms", s.maxMs());
      for (double p : ps) {
        o.put(percentileKey(p) + "_" + m + "_ms", s.percentileMs(p));
      }
    }
    ObjectNode h = o.putObject("histograms");
    h.put("unit", "microseconds");
    h.put("encoding", "HdrHistogram compressed, base64");
    for (String m : METRICS) {
      ObjectNode e = h.putObject(m);
      e.put("sum_ms", latency.get(m).sumMs());
      e.put("data", latency.get(m).encode());
    }
    return o;
  }

  /** 50, 90, 99 and the requested percentiles, sorted, without duplicates. */
  public static List<Double> allPercentiles(List<Double> requested) {
    TreeSet<Double> s = new TreeSet<>(List.of(50.0, 90.0, 99.0));
    s.addAll(requested);
    return new ArrayList<>(s);
  }

  /** Reads a summary written by {@link #toJson}; {@code source} names it in errors. */
  public static BenchSummary fromJson(JsonNode o, String source) {
    if (!"pdserve-bench".equals(o.path("format").asText())) {
      throw new IllegalArgumentException(
          source + " is not a pdserve bench JSON summary (no \"format\": \"pdserve-bench\")");
    }
    BenchSummary s = new BenchSummary();
    for (String k :
        List.of("backend", "target", "model", "dataset", "images_per_request", "image_size")) {
      if (o.hasNonNull(k)) {
        s.meta.put(k, o.get(k).asText());
      }
    }
    s.runs = o.path("runs").asInt(1);
    s.startedAtMs = o.path("started_at_ms").asLong();
    s.finishedAtMs = o.path("finished_at_ms").asLong();
    s.durationSeconds = o.path("duration").asDouble();
    s.completed = o.path("completed").asLong();
    s.failed = o.path("failed").asLong();
    o.path("failures").properties().forEach(e -> s.failures.put(e.getKey(), e.getValue().asLong()));
    s.totalInputTokens = o.path("total_input_tokens").asLong();
    s.totalOutputTokens = o.path("total_output_tokens").asLong();
    s.cachedTokens = o.path("cached_tokens").asLong();
    o.path("goodput_slos_ms")
        .properties()
        .forEach(e -> s.goodputSlosMs.put(e.getKey(), e.getValue().asDouble()));
    s.goodRequests = o.path("good_requests").asLong();
    JsonNode h = o.path("histograms");
    for (String m : METRICS) {
      JsonNode e = h.path(m);
      if (!e.hasNonNull("data")) {
        throw new IllegalArgumentException(
            source + " has no histograms." + m + ".data (written by an older pdserve bench?)");
      }
      try {
        s.latency.put(m, LatencyStats.decode(e.get("data").asText(), e.path("sum_ms").asDouble()));
      } catch (IllegalArgumentException ex) {
        throw new IllegalArgumentException(
            source + ": histograms." + m + ": " + ex.getMessage(), ex);
      }
    }
    return s;
  }

  /**
   * Merges runs: counts and histograms add; the duration spans the earliest start to the latest
   * finish (runs of several bench processes against one cluster overlap in time). All runs must
   * have used the same goodput SLOs.
   */
  public static BenchSummary merge(List<BenchSummary> parts) {
    if (parts.isEmpty()) {
      throw new IllegalArgumentException("nothing to merge");
    }
    BenchSummary m = new BenchSummary();
    m.runs = 0;
    m.startedAtMs = Long.MAX_VALUE;
    m.finishedAtMs = Long.MIN_VALUE;
    m.goodputSlosMs.putAll(parts.get(0).goodputSlosMs);
    for (BenchSummary p : parts) {
      if (!p.goodputSlosMs.equals(m.goodputSlosMs)) {
        throw new IllegalArgumentException(
            "runs used different --goodput SLOs ("
                + m.goodputSlosMs
                + " vs "
                + p.goodputSlosMs
                + "): their good-request counts cannot be merged");
      }
      p.meta.forEach((k, v) -> m.meta.merge(k, v, (a, b) -> a.equals(b) ? a : a + ", " + b));
      m.runs += p.runs;
      m.startedAtMs = Math.min(m.startedAtMs, p.startedAtMs);
      m.finishedAtMs = Math.max(m.finishedAtMs, p.finishedAtMs);
      m.completed += p.completed;
      m.failed += p.failed;
      p.failures.forEach((k, v) -> m.failures.merge(k, v, Long::sum));
      m.totalInputTokens += p.totalInputTokens;
      m.totalOutputTokens += p.totalOutputTokens;
      m.cachedTokens += p.cachedTokens;
      m.goodRequests += p.goodRequests;
      for (String k : METRICS) {
        m.latency.get(k).add(p.latency.get(k));
      }
    }
    m.durationSeconds = (m.finishedAtMs - m.startedAtMs) / 1000.0;
    return m;
  }
}
