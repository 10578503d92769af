package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.pdserve.internal.v1.AdminServiceGrpc;
import dev.pdserve.internal.v1.ListNodesRequest;
import dev.pdserve.launcher.Main;
import dev.pdserve.launcher.metrics.PrometheusText;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code pdserve bench} against a real cluster (router, prefill and decode workers in this JVM with
 * real gRPC, Flight, Hazelcast and ONNX Runtime): every request of a Poisson run completes, every
 * figure is in the JSON, the CSV and HTML reports are written, and {@code bench merge} combines
 * summaries.
 */
class BenchCommandTest {
  private static InJvmCluster cluster;
  private static final ObjectMapper JSON = new ObjectMapper();

  @BeforeAll
  static void start() throws Exception {
    // Every request goes through the prefill node and moves its KV (what the cluster report
    // measures):
    // no prefill on the decode node for short prompts.
    cluster = InJvmCluster.start(1, 1, 0, Map.of("router.local-prefill-threshold", "0"));
  }

  @AfterAll
  static void stop() {
    if (cluster != null) {
      cluster.close();
    }
  }

  private record Run(int code, String out, String err) {}

  private static Run run(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Main.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
    return new Run(code, out.toString(), err.toString());
  }

  @Test
  void poissonRunOf200RequestsCompletesAndReportsEveryFigure(@TempDir Path tmp) throws Exception {
    Path json = tmp.resolve("run.json");
    Path csv = tmp.resolve("run.csv");
    Path html = tmp.resolve("run.html");
    Run r =
        run(
            "bench",
            "--router",
            cluster.router.grpcAddress(),
            "--num-prompts",
            "200",
            "--request-rate",
            "40",
            "--burstiness",
            "1",
            "--input-len",
            "16",
            "--output-len",
            "4",
            "--range-ratio",
            "0.5",
            "--ignore-eos",
            "--seed",
            "3",
            "--warmup-requests",
            "4",
            "--workers",
            "2",
            "--percentiles",
            "50,90,99,99.9",
            "--goodput",
            "ttft:60000",
            "e2el:60000",
            "--json",
            json.toString(),
            "--detailed",
            "--csv",
            csv.toString(),
            "--html",
            html.toString());
    assertEquals(0, r.code(), r.err() + r.out());
    assertTrue(
        r.out().contains("Serving Benchmark Result")
            && r.out().contains("Mean TTFT (ms):")
            && r.out().contains("Cluster during the run"),
        r.out());

    JsonNode j = JSON.readTree(json.toFile());
    assertEquals(200, j.get("completed").asInt(), "every request completes: " + j.get("failures"));
    assertEquals(0, j.get("failed").asInt());
    assertEquals(0, j.get("failures").size());
    assertEquals(0, j.get("warmup_failed").asInt());
    assertEquals("grpc", j.get("backend").asText());
    for (String k :
        List.of(
            "duration",
            "total_input_tokens",
            "total_output_tokens",
            "request_throughput",
            "input_throughput",
            "output_throughput",
            "total_token_throughput",
            "request_goodput",
            "good_requests")) {
      assertTrue(j.get(k).isNumber() && j.get(k).asDouble() > 0, k + " = " + j.get(k));
    }
    assertEquals(200, j.get("good_requests").asInt(), "generous SLOs: every request is good");
    for (String m : List.of("ttft", "tpot", "itl", "e2el")) {
      for (String stat : List.of("mean", "median", "std", "max", "p50", "p90", "p99", "p99.9")) {
        String key = stat + "_" + m + "_ms";
        assertTrue(j.has(key) && j.get(key).isNumber(), key);
      }
      assertTrue(j.get("median_" + m + "_ms").asDouble() > 0, m);
      assertFalse(
          j.get("histograms").get(m).get("data").asText().isEmpty(), "encoded histogram of " + m);
    }
    assertEquals(200, j.get("count_ttft").asInt());
    assertEquals(200, j.get("count_e2el").asInt());

    JsonNode rows = j.get("requests");
    assertEquals(200, rows.size());
    long outTokens = 0;
    long inTokens = 0;
    for (JsonNode row : rows) {
      int out = row.get("output_tokens").asInt();
      assertTrue(out >= 2 && out <= 6, "--ignore-eos: exactly max_tokens in [2, 6], got " + out);
      assertEquals(out - 1, row.get("itl_ms").size(), "one ITL per token after the first");
      outTokens += out;
      inTokens += row.get("prompt_tokens").asInt();
    }
    assertEquals(outTokens, j.get("total_output_tokens").asLong());
    assertEquals(inTokens, j.get("total_input_tokens").asLong());
    assertEquals(
        2,
        rows.findValues("worker").stream().map(JsonNode::asInt).distinct().count(),
        "both workers sent requests");

    JsonNode c = j.get("cluster");
    assertEquals(1, c.get("before").get("active_per_role").get("prefill").asInt());
    assertEquals(1, c.get("before").get("active_per_role").get("decode").asInt());
    assertEquals(1, c.get("after").get("active_per_role").get("decode").asInt());
    boolean metricsExposed =
        AdminServiceGrpc.newBlockingStub(cluster.channel)
            .listNodes(ListNodesRequest.getDefaultInstance())
            .getNodesList()
            .stream()
            .anyMatch(n -> !n.getMetricsUrl().isEmpty());
    JsonNode kv = c.get("during_run").get("kv_transfer_sent_bytes");
    if (metricsExposed) {
      assertTrue(kv.get("value").asDouble() > 0, "KV moved from prefill to decode: " + kv);
    } else {
      assertTrue(
          kv.get("unavailable").asText().contains("metrics_url"),
          "unavailable, with the reason: " + kv);
    }
    for (String f :
        List.of(
            "kv_transfer_sent_bytes",
            "kv_transfer_send_seconds",
            "kv_transfer_mean_ms",
            "role_switches")) {
      JsonNode fig = c.get("during_run").get(f);
      assertTrue(
          fig.has("value") ^ fig.has("unavailable"),
          f + ": a value or the reason it is unavailable");
    }

    List<String> lines = Files.readAllLines(csv);
    assertEquals(201, lines.size());
    assertTrue(lines.get(0).startsWith("index,request_id,worker,status"));
    String page = Files.readString(html);
    assertTrue(
        page.contains("<svg")
            && page.contains("Request timeline")
            && page.contains("Time to first token"));
    cluster.awaitNoKvHeld();

    // bench merge: a run merged with itself doubles the counts and keeps every percentile
    Path merged = tmp.resolve("merged.json");
    Run m =
        run(
            "bench",
            "merge",
            json.toString(),
            json.toString(),
            "--json",
            merged.toString(),
            "--percentiles",
            "99.9");
    assertEquals(0, m.code(), m.err());
    assertTrue(m.out().contains("Merged runs:"), m.out());
    JsonNode mj = JSON.readTree(merged.toFile());
    assertEquals(400, mj.get("completed").asInt());
    assertEquals(2, mj.get("runs").asInt());
    for (String key : List.of("p50_ttft_ms", "p99_itl_ms", "p99.9_e2el_ms", "p90_tpot_ms")) {
      assertEquals(j.get(key).asDouble(), mj.get(key).asDouble(), 1e-9, key);
    }
    assertEquals(2 * j.get("count_itl").asLong(), mj.get("count_itl").asLong());
  }

  /**
   * The load tester's client-side TTFT and ITL percentiles agree with the router's own histograms
   * for the same requests: each bench percentile lies in the router's bucket for that percentile or
   * in a neighbouring one (the client measures a little later than the router, which stamps when it
   * sends; the buckets are the resolution the router offers).
   */
  @Test
  void benchPercentilesAgreeWithTheRoutersHistograms(@TempDir Path tmp) throws Exception {
    PrometheusText before = scrapeRouter();
    Path json = tmp.resolve("agree.json");
    Run r =
        run(
            "bench",
            "--router",
            cluster.router.grpcAddress(),
            "--num-prompts",
            "120",
            "--request-rate",
            "30",
            "--input-len",
            "24",
            "--output-len",
            "8",
            "--ignore-eos",
            "--seed",
            "11",
            "--warmup-requests",
            "0",
            "--json",
            json.toString());
    assertEquals(0, r.code(), r.err() + r.out());
    PrometheusText after = scrapeRouter();
    JsonNode j = JSON.readTree(json.toFile());
    assertEquals(120, j.get("completed").asInt());
    for (String[] m :
        new String[][] {
          {"ttft", "vllm:time_to_first_token_seconds"}, {"itl", "vllm:inter_token_latency_seconds"}
        }) {
      TreeMap<Double, Double> buckets = bucketDelta(before, after, m[1]);
      double total = buckets.lastEntry().getValue();
      assertEquals(
          j.get("count_" + m[0]).asDouble(),
          total,
          m[1] + ": the router saw exactly the bench's " + m[0] + " samples");
      List<Double> bounds = List.copyOf(buckets.keySet());
      for (String q : List.of("50", "90", "99")) {
        double client = j.get("p" + q + "_" + m[0] + "_ms").asDouble() / 1000.0;
        double rank = Double.parseDouble(q) / 100.0 * total;
        int i = 0;
        while (buckets.get(bounds.get(i)) < rank) {
          i++;
        }
        double lo = i >= 2 ? bounds.get(i - 2) : 0;
        double hi = bounds.get(Math.min(bounds.size() - 1, i + 1));
        assertTrue(
            client >= lo && client <= hi,
            m[0]
                + " p"
                + q
                + ": bench says "
                + client
                + " s, the router's histogram puts it in ("
                + (i >= 1 ? bounds.get(i - 1) : 0)
                + ", "
                + bounds.get(i)
                + "]; allowed one neighbouring bucket: ["
                + lo
                + ", "
                + hi
                + "]");
      }
    }
    cluster.awaitNoKvHeld();
  }

  private static PrometheusText scrapeRouter() throws Exception {
    String url =
        AdminServiceGrpc.newBlockingStub(cluster.channel)
            .listNodes(ListNodesRequest.getDefaultInstance())
            .getNodesList()
            .stream()
            .filter(n -> n.getRole().equalsIgnoreCase("router"))
            .findFirst()
            .orElseThrow()
            .getMetricsUrl();
    var resp =
        HttpClient.newHttpClient()
            .send(
                HttpRequest.newBuilder(URI.create(url)).build(),
                HttpResponse.BodyHandlers.ofString());
    assertEquals(200, resp.statusCode());
    return PrometheusText.parse(resp.body());
  }

  /**
   * Cumulative bucket counts (upper bound → count) of histogram {@code name}, after minus before.
   */
  private static TreeMap<Double, Double> bucketDelta(
      PrometheusText before, PrometheusText after, String name) {
    TreeMap<Double, Double> out = new TreeMap<>();
    for (PrometheusText.Sample s : after.family(name).samples()) {
      if (s.name().equals(name + "_bucket")) {
        String le = s.labels().get("le");
        double bound = le.equals("+Inf") ? Double.POSITIVE_INFINITY : Double.parseDouble(le);
        out.merge(bound, s.value(), Double::sum);
      }
    }
    for (PrometheusText.Sample s : before.family(name).samples()) {
      if (s.name().equals(name + "_bucket")) {
        String le = s.labels().get("le");
        double bound = le.equals("+Inf") ? Double.POSITIVE_INFINITY : Double.parseDouble(le);
        out.merge(bound, -s.value(), Double::sum);
      }
    }
    return out;
  }

  @Test
  void badOptionsGetAClearErrorAndExitCode2() {
    Run r = run("bench", "--router", cluster.router.grpcAddress(), "--request-rate", "fast");
    assertEquals(2, r.code());
    assertTrue(r.err().contains("--request-rate"), r.err());
    r =
        run(
            "bench",
            "--router",
            cluster.router.grpcAddress(),
            "--input-len",
            "2000",
            "--num-prompts",
            "1");
    assertEquals(2, r.code());
    assertTrue(r.err().contains("--input-len 2000") && r.err().contains("1024"), r.err());
    r = run("bench", "--num-prompts", "1");
    assertEquals(2, r.code());
    assertTrue(r.err().contains("--router HOST:PORT"), r.err());
    r = run("bench", "--router", cluster.router.grpcAddress(), "--goodput", "ttfb:100");
    assertEquals(2, r.code());
    assertTrue(r.err().contains("ttft:MS"), r.err());
    r = run("bench", "merge", "/nonexistent.json");
    assertEquals(2, r.code());
    assertTrue(r.err().contains("/nonexistent.json"), r.err());
  }
}
