package dev.pdserve.launcher.faults;

import java.time.Instant;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Collectors;

/** The fault table as Markdown and as JSON. */
final class FaultReport {
  private FaultReport() {}

  static String markdown(
      Instant started,
      String load,
      int streams,
      int tokens,
      List<FaultRun.Result> rows,
      Overload.Result overload,
      List<Map<String, Object>> soak) {
    StringBuilder b = new StringBuilder();
    b.append("Fault suite started ")
        .append(started)
        .append(", ")
        .append(streams)
        .append(" streams x ")
        .append(tokens)
        .append(" tokens (even greedy, odd seeded sampling), load ")
        .append(load)
        .append("\n\n");
    b.append(
        "| fault | node | same tokens | lost | token lost | duplicated | changed | KV blocks"
            + " stranded 15 s later | detected (s) | other nodes not ACTIVE meanwhile | max /"
            + " median resume (s) | migrations | afterwards | errors |\n");
    b.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (FaultRun.Result r : rows) {
      b.append("| ")
          .append(r.fault())
          .append(" | ")
          .append(r.target())
          .append(" | ")
          .append(r.same())
          .append('/')
          .append(r.streams() - r.unchecked())
          .append(r.unchecked() > 0 ? " (" + r.unchecked() + " without reference)" : "")
          .append(" | ")
          .append(r.lost())
          .append(" | ")
          .append(r.tokenLost())
          .append(" | ")
          .append(r.duplicated())
          .append(" | ")
          .append(r.changed())
          .append(" | ")
          .append(r.strandedBlocks())
          .append(" | ")
          .append(num(r.detectionSeconds()))
          .append(" | ")
          .append(r.liveLost().isEmpty() ? "none" : String.join(", ", r.liveLost()))
          .append(" | ")
          .append(num(r.maxResumeSeconds()))
          .append(" / ")
          .append(num(r.medianResumeSeconds()))
          .append(" | ")
          .append(
              r.migrations().entrySet().stream()
                  .map(e -> e.getKey() + " " + e.getValue().intValue())
                  .collect(Collectors.joining(", ")))
          .append(" | ")
          .append(r.recovery())
          .append(" | ")
          .append(String.join("; ", r.errors()).replace("|", "/"))
          .append(" |\n");
    }
    if (overload != null) {
      Overload.Result o = overload;
      b.append("\nOverload: capacity ")
          .append(num(o.capacityPerSecond()))
          .append(" req/s (32-token requests), offered ")
          .append(num(o.offeredPerSecond()))
          .append(" req/s: ")
          .append(o.sent())
          .append(" sent, ")
          .append(o.refused())
          .append(" refused (latency p50 ")
          .append(num(o.refusalP50Ms()))
          .append(" ms, p99 ")
          .append(num(o.refusalP99Ms()))
          .append(" ms, max ")
          .append(num(o.refusalMaxMs()))
          .append(" ms), ")
          .append(o.admitted())
          .append(" admitted (TTFT p50 ")
          .append(num(o.admittedTtftP50Seconds()))
          .append(" s, p99 ")
          .append(num(o.admittedTtftP99Seconds()))
          .append(" s; max-queue-delay ")
          .append(o.maxQueueDelay())
          .append("), ")
          .append(o.failed())
          .append(" failed otherwise; RSS of all nodes ")
          .append(o.rssBeforeKb() / 1024)
          .append(" MiB before, ")
          .append(o.rssAfterKb() / 1024)
          .append(" MiB after\n");
    }
    if (!soak.isEmpty()) {
      b.append("\n| minute | KV reserved blocks | threads | heap after GC (MiB) | RSS (MiB) |")
          .append(
              " Arrow allocated (bytes, per worker) | failed |\n|---|---|---|---|---|---|---|\n");
      for (Map<String, Object> s : soak) {
        b.append("| ")
            .append(s.get("minute"))
            .append(" | ")
            .append(s.get("kv_reserved_blocks"))
            .append(" | ")
            .append(s.get("threads"))
            .append(" | ")
            .append(((Long) s.get("heap_after_gc_kb")) / 1024)
            .append(" | ")
            .append(((Long) s.get("rss_kb")) / 1024)
            .append(" | ")
            .append(perWorker(s.get("arrow_allocated_bytes")))
            .append(" | ")
            .append(s.get("failed_requests"))
            .append(" |\n");
      }
    }
    return b.toString();
  }

  static String json(
      Instant started,
      String load,
      int streams,
      int tokens,
      List<FaultRun.Result> rows,
      Overload.Result overload,
      List<Map<String, Object>> soak) {
    StringBuilder b = new StringBuilder("{\n");
    b.append("  \"started\": ").append(q(started.toString())).append(",\n");
    b.append("  \"load\": ").append(q(load)).append(",\n");
    b.append("  \"streams\": ").append(streams).append(",\n");
    b.append("  \"tokens\": ").append(tokens).append(",\n");
    b.append("  \"faults\": [\n");
    for (int i = 0; i < rows.size(); i++) {
      FaultRun.Result r = rows.get(i);
      b.append("    {\"fault\": ")
          .append(q(r.fault()))
          .append(", \"node\": ")
          .append(q(r.target()))
          .append(", \"streams\": ")
          .append(r.streams())
          .append(", \"without_reference\": ")
          .append(r.unchecked())
          .append(", \"same\": ")
          .append(r.same())
          .append(", \"lost\": ")
          .append(r.lost())
          .append(", \"token_lost\": ")
          .append(r.tokenLost())
          .append(", \"duplicated\": ")
          .append(r.duplicated())
          .append(", \"changed\": ")
          .append(r.changed())
          .append(", \"kv_blocks_stranded\": ")
          .append(r.strandedBlocks())
          .append(", \"detection_s\": ")
          .append(jnum(r.detectionSeconds()))
          .append(", \"other_nodes_not_active\": [")
          .append(r.liveLost().stream().map(FaultReport::q).collect(Collectors.joining(", ")))
          .append("], \"max_resume_s\": ")
          .append(jnum(r.maxResumeSeconds()))
          .append(", \"median_resume_s\": ")
          .append(jnum(r.medianResumeSeconds()))
          .append(", \"migrations\": {")
          .append(
              r.migrations().entrySet().stream()
                  .map(e -> q(e.getKey()) + ": " + e.getValue().intValue())
                  .collect(Collectors.joining(", ")))
          .append("}, \"afterwards\": ")
          .append(q(r.recovery()))
          .append(", \"errors\": [")
          .append(r.errors().stream().map(FaultReport::q).collect(Collectors.joining(", ")))
          .append("], \"seconds\": ")
          .append(jnum(r.seconds()))
          .append('}')
          .append(i + 1 < rows.size() ? ",\n" : "\n");
    }
    b.append("  ]");
    if (overload != null) {
      Overload.Result o = overload;
      b.append(",\n  \"overload\": {\"capacity_rps\": ")
          .append(jnum(o.capacityPerSecond()))
          .append(", \"offered_rps\": ")
          .append(jnum(o.offeredPerSecond()))
          .append(", \"sent\": ")
          .append(o.sent())
          .append(", \"refused\": ")
          .append(o.refused())
          .append(", \"admitted\": ")
          .append(o.admitted())
          .append(", \"failed\": ")
          .append(o.failed())
          .append(", \"refusal_ms\": {\"p50\": ")
          .append(jnum(o.refusalP50Ms()))
          .append(", \"p99\": ")
          .append(jnum(o.refusalP99Ms()))
          .append(", \"max\": ")
          .append(jnum(o.refusalMaxMs()))
          .append("}, \"admitted_ttft_s\": {\"p50\": ")
          .append(jnum(o.admittedTtftP50Seconds()))
          .append(", \"p99\": ")
          .append(jnum(o.admittedTtftP99Seconds()))
          .append("}, \"max_queue_delay\": ")
          .append(q(o.maxQueueDelay()))
          .append(", \"rss_kb_before\": ")
          .append(o.rssBeforeKb())
          .append(", \"rss_kb_after\": ")
          .append(o.rssAfterKb())
          .append('}');
    }
    if (!soak.isEmpty()) {
      b.append(",\n  \"soak\": [\n");
      for (int i = 0; i < soak.size(); i++) {
        b.append("    {")
            .append(
                soak.get(i).entrySet().stream()
                    .map(e -> q(e.getKey()) + ": " + jvalue(e.getValue()))
                    .collect(Collectors.joining(", ")))
            .append('}')
            .append(i + 1 < soak.size() ? ",\n" : "\n");
      }
      b.append("  ]");
    }
    return b.append("\n}\n").toString();
  }

  /** {@code p0 268500992, d0 268435456} from a node → bytes map ({@code -} where not scraped). */
  static String perWorker(Object byNode) {
    if (!(byNode instanceof Map<?, ?> m) || m.isEmpty()) {
      return "-";
    }
    return m.entrySet().stream()
        .map(
            e ->
                e.getKey()
                    + " "
                    + (e.getValue() instanceof Long v && v < 0
                        ? "-"
                        : String.valueOf(e.getValue())))
        .collect(Collectors.joining(", "));
  }

  /** A soak row's value as JSON: numbers as they are, a node → number map as an object. */
  static String jvalue(Object v) {
    if (v instanceof Map<?, ?> m) {
      return m.entrySet().stream()
          .map(
              e ->
                  q(String.valueOf(e.getKey()))
                      + ": "
                      + (e.getValue() instanceof Long l && l < 0 ? "null" : e.getValue()))
          .collect(Collectors.joining(", ", "{", "}"));
    }
    return String.valueOf(v);
  }

  static String num(double v) {
    return v < 0 ? "-" : String.format(Locale.ROOT, "%.2f", v);
  }

  static String jnum(double v) {
    return v < 0 ? "null" : String.format(Locale.ROOT, "%.3f", v);
  }

  static String q(String s) {
    return "\""
        + (s == null ? "" : s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", " "))
        + "\"";
  }
}
