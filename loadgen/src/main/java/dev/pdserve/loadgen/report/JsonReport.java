package dev.pdserve.loadgen.report;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.loadgen.Benchmark;
import dev.pdserve.loadgen.RequestResult;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/**
 * The {@code --json} file: the summary, the cluster report and, with {@code --detailed}, a row per
 * request.
 */
public final class JsonReport {
  public static final ObjectMapper JSON =
      new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  private JsonReport() {}

  public static ObjectNode of(Benchmark.Outcome o, List<Double> percentiles, boolean detailed) {
    ObjectNode n = o.summary().toJson(JSON, percentiles);
    n.put("warmup_failed", o.warmupFailed());
    n.set("cluster", o.cluster().toJson(JSON));
    if (detailed) {
      ArrayNode rows = n.putArray("requests");
      for (RequestResult r : o.results()) {
        ObjectNode row = rows.addObject();
        row.put("index", r.index());
        row.put("request_id", r.requestId());
        row.put("worker", r.worker());
        row.put("status", r.status());
        row.put("send_time_s", r.sendNanos() / 1e9);
        putMs(row, "ttft_ms", r.ttftNanos());
        putMs(row, "tpot_ms", r.tpotNanos());
        putMs(row, "e2el_ms", r.e2eNanos());
        ArrayNode itl = row.putArray("itl_ms");
        for (long v : r.itlNanos()) {
          itl.add(v / 1e6);
        }
        row.put("prompt_tokens", r.promptTokens());
        row.put("output_tokens", r.outputTokens());
        row.put("cached_tokens", r.cachedTokens());
        row.put("finish_reason", r.finishReason());
        if (!r.error().isEmpty()) {
          row.put("error", r.error());
        }
      }
    }
    return n;
  }

  private static void putMs(ObjectNode row, String key, long nanos) {
    if (nanos < 0) {
      row.putNull(key);
    } else {
      row.put(key, nanos / 1e6);
    }
  }

  public static void write(Path file, ObjectNode node) throws IOException {
    JSON.writeValue(file.toFile(), node);
  }
}
