package dev.pdserve.launcher.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.SamplingParams;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.internal.v1.AdminServiceGrpc;
import dev.pdserve.internal.v1.ListNodesRequest;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.launcher.cluster.InJvmCluster;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.LogEvent;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.appender.AbstractAppender;
import org.apache.logging.log4j.core.config.Configuration;
import org.apache.logging.log4j.core.config.LoggerConfig;
import org.apache.logging.log4j.core.config.Property;
import org.apache.logging.log4j.layout.template.json.JsonTemplateLayout;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Observability of a real cluster in one JVM (router, a prefill and a decode worker, an expert
 * shard; Netty gRPC, Flight, Hazelcast, ORT): every node serves Prometheus text at its published
 * {@code /metrics} URL with vLLM's names, the figures move with the requests served, and a
 * request's id is in the log lines of every node that worked on it.
 */
class ClusterObservabilityTest {
  static InJvmCluster cluster;
  static final HttpClient HTTP =
      HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

  @BeforeAll
  static void start() throws Exception {
    // Every request goes through the prefill node and moves its KV (the metrics below count that):
    // no prefill on the decode node for short prompts.
    cluster = InJvmCluster.start(1, 1, 1, Map.of("router.local-prefill-threshold", "0"));
  }

  @AfterAll
  static void stop() {
    if (cluster != null) {
      cluster.close();
    }
  }

  /** The metrics URL of every node, as an admin listing (ListNodes on the router) shows it. */
  static Map<String, NodeStatus> listedNodes() {
    List<NodeStatus> nodes =
        AdminServiceGrpc.newBlockingStub(cluster.channel)
            .withDeadlineAfter(10, TimeUnit.SECONDS)
            .listNodes(ListNodesRequest.getDefaultInstance())
            .getNodesList();
    return nodes.stream()
        .collect(
            Collectors.toMap(NodeStatus::getId, Function.identity(), (a, b) -> a, TreeMap::new));
  }

  static PrometheusText scrape(String url) throws Exception {
    HttpResponse<String> r =
        HTTP.send(
            HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(10)).GET().build(),
            HttpResponse.BodyHandlers.ofString());
    assertEquals(200, r.statusCode(), "GET " + url + ": " + r.body());
    String type = r.headers().firstValue("Content-Type").orElse("");
    assertTrue(type.startsWith("text/plain"), "GET " + url + " answered Content-Type " + type);
    try {
      return PrometheusText.parse(r.body());
    } catch (IllegalArgumentException e) {
      throw new AssertionError(
          "GET " + url + " is not valid Prometheus text: " + e.getMessage() + "\n" + r.body(), e);
    }
  }

  static Set<String> sampleNames(PrometheusText t) {
    Set<String> out = new TreeSet<>();
    t.families().values().forEach(f -> f.samples().forEach(s -> out.add(s.name())));
    return out;
  }

  static void assertHas(String node, PrometheusText t, List<String> names) {
    Set<String> have = sampleNames(t);
    List<String> missing = names.stream().filter(n -> !have.contains(n)).toList();
    assertTrue(missing.isEmpty(), node + " lacks " + missing + "; it has " + have);
  }

  static final List<String> ROUTER_NAMES =
      List.of(
          "vllm:time_to_first_token_seconds_count",
          "vllm:inter_token_latency_seconds_count",
          "vllm:e2e_request_latency_seconds_count",
          "vllm:request_queue_time_seconds_count",
          "vllm:request_prefill_time_seconds_count",
          "vllm:request_decode_time_seconds_count",
          "vllm:num_requests_running",
          "vllm:num_requests_waiting",
          "vllm:prompt_tokens_total",
          "vllm:generation_tokens_total",
          "vllm:request_success_total",
          "pdserve_request_rejections_total");

  static final List<String> WORKER_NAMES =
      List.of(
          "vllm:num_requests_running",
          "vllm:num_requests_waiting",
          "vllm:kv_cache_usage_perc",
          "vllm:prompt_tokens_total",
          "vllm:generation_tokens_total",
          "vllm:request_success_total",
          "vllm:prefix_cache_queries_total",
          "vllm:prefix_cache_hits_total",
          "pdserve_kv_reserved_blocks",
          "pdserve_kv_transfer_sent_bytes_count",
          "pdserve_kv_transfer_send_seconds_count",
          "pdserve_kv_transfer_received_bytes_count",
          "pdserve_kv_transfer_receive_seconds_count",
          "pdserve_arrow_allocated_bytes",
          "pdserve_arrow_peak_bytes",
          "pdserve_expert_dispatch_seconds_count",
          "pdserve_role_switches_total",
          "pdserve_migrations_total",
          "pdserve_prefill_step_seconds_count",
          "pdserve_decode_step_seconds_count");

  static final List<String> SHARD_NAMES =
      List.of("pdserve_expert_tokens_total", "pdserve_expert_compute_seconds_count");

  @Test
  void everyNodeServesMetricsThatMoveConsistentlyWithTheRequests() throws Exception {
    Map<String, NodeStatus> nodes = listedNodes();
    assertEquals(
        Set.of("router", "p0", "d0", "e0"), nodes.keySet(), "nodes listed: " + nodes.keySet());
    nodes.forEach(
        (id, n) ->
            assertTrue(
                n.getMetricsUrl().matches("http://127\\.0\\.0\\.1:\\d+/metrics"),
                id + " lists metrics URL '" + n.getMetricsUrl() + "'"));
    assertEquals(
        4,
        nodes.values().stream().map(NodeStatus::getMetricsUrl).distinct().count(),
        "each node has its own endpoint: " + nodes);
    assertEquals(
        nodes.get("d0").getMetricsUrl(),
        cluster.decode.get(0).status().getMetricsUrl(),
        "status RPC and registry agree");

    String router = nodes.get("router").getMetricsUrl();
    String prefill = nodes.get("p0").getMetricsUrl();
    String decode = nodes.get("d0").getMetricsUrl();
    String shard = nodes.get("e0").getMetricsUrl();
    PrometheusText r0 = scrape(router);
    PrometheusText p0 = scrape(prefill);
    PrometheusText d0 = scrape(decode);
    PrometheusText e0 = scrape(shard);
    assertHas("router", r0, ROUTER_NAMES);
    assertHas("prefill worker", p0, WORKER_NAMES);
    assertHas("decode worker", d0, WORKER_NAMES);
    assertHas("expert shard", e0, SHARD_NAMES);
    Map<String, String> model = Map.of("model_name", "tiny");
    r0.sum("vllm:time_to_first_token_seconds_count", model); // vLLM's label is there

    // Three requests that each run to max_tokens, and one refused.
    int requests = 3;
    int maxTokens = 6;
    long tokens = 0;
    long promptTokens = 0;
    long deltas = 0;
    for (int i = 0; i < requests; i++) {
      var it =
          cluster
              .blocking()
              .generate(
                  GenerateRequest.newBuilder()
                      .setRequestId("metrics-" + i)
                      .setPrompt("Count the experts, please " + i)
                      .setParams(
                          SamplingParams.newBuilder()
                              .setTemperature(0)
                              .setMaxTokens(maxTokens)
                              .setIgnoreEos(true))
                      .build());
      while (it.hasNext()) {
        var m = it.next();
        if (m.hasDelta() && m.getDelta().getTokenIdsCount() > 0) {
          deltas++;
          tokens += m.getDelta().getTokenIdsCount();
        }
        if (m.hasCompletion()) {
          assertEquals("length", m.getCompletion().getFinishReason());
          promptTokens += m.getCompletion().getUsage().getPromptTokens();
        }
      }
    }
    assertEquals(requests * maxTokens, tokens, "tokens streamed");
    try {
      cluster
          .blocking()
          .generate(
              GenerateRequest.newBuilder()
                  .setRequestId("metrics-bad")
                  .setPrompt("x")
                  .setParams(SamplingParams.newBuilder().setMaxTokens(0))
                  .build())
          .hasNext();
      fail("max_tokens 0 was accepted");
    } catch (StatusRuntimeException e) {
      assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    }

    // The router measured each request: counts are exact once the client has seen the completion.
    PrometheusText r1 = scrape(router);
    assertEquals(
        requests,
        diff(r0, r1, "vllm:time_to_first_token_seconds_count"),
        "TTFT observations, one per request");
    assertEquals(
        deltas - requests,
        diff(r0, r1, "vllm:inter_token_latency_seconds_count"),
        "ITL observations, one per later token message");
    assertEquals(
        requests, diff(r0, r1, "vllm:e2e_request_latency_seconds_count"), "e2e observations");
    assertEquals(
        requests, diff(r0, r1, "vllm:request_queue_time_seconds_count"), "queue time observations");
    assertEquals(
        requests,
        diff(r0, r1, "vllm:request_prefill_time_seconds_count"),
        "prefill time observations");
    assertEquals(
        requests,
        diff(r0, r1, "vllm:request_decode_time_seconds_count"),
        "decode time observations");
    assertEquals(
        tokens,
        diff(r0, r1, "vllm:generation_tokens_total"),
        "router generation_tokens_total = tokens the client received");
    assertEquals(
        promptTokens,
        diff(r0, r1, "vllm:prompt_tokens_total"),
        "router prompt_tokens_total = usage.prompt_tokens summed");
    assertEquals(
        requests,
        r1.sum("vllm:request_success_total", Map.of("finished_reason", "length"))
            - r0.sum("vllm:request_success_total", Map.of("finished_reason", "length")),
        "successes with finished_reason=length");
    assertEquals(
        1,
        r1.sum("pdserve_request_rejections_total", Map.of("reason", "invalid_argument"))
            - r0.sum("pdserve_request_rejections_total", Map.of("reason", "invalid_argument")),
        "the refused request, by reason");
    assertTrue(
        r1.sum("vllm:e2e_request_latency_seconds_sum")
            > r0.sum("vllm:e2e_request_latency_seconds_sum"),
        "e2e seconds accumulate");

    // Workers and the shard count on their own threads: wait until they caught up, then compare.
    long generated = tokens;
    InJvmCluster.await(
        Duration.ofSeconds(10),
        () -> {
          try {
            PrometheusText d = scrape(decode);
            return diff(d0, d, "vllm:generation_tokens_total") == generated
                && d.sum("pdserve_kv_reserved_blocks") == 0;
          } catch (Exception e) {
            throw new AssertionError(e);
          }
        },
        "decode worker to count " + tokens + " generated tokens and hold no reservations");
    PrometheusText d1 = scrape(decode);
    PrometheusText p1 = scrape(prefill);
    PrometheusText e1 = scrape(shard);
    assertEquals(
        requests,
        d1.sum("vllm:request_success_total", Map.of("finished_reason", "length"))
            - d0.sum("vllm:request_success_total", Map.of("finished_reason", "length")),
        "decode worker successes");
    assertEquals(
        requests,
        diff(d0, d1, "pdserve_kv_transfer_received_bytes_count"),
        "KV transfers received, one per request");
    assertEquals(
        requests,
        diff(p0, p1, "pdserve_kv_transfer_sent_bytes_count"),
        "KV transfers sent, one per request");
    assertEquals(
        diff(p0, p1, "pdserve_kv_transfer_sent_bytes_sum"),
        diff(d0, d1, "pdserve_kv_transfer_received_bytes_sum"),
        "KV bytes sent by prefill = received by decode");
    assertTrue(diff(p0, p1, "pdserve_kv_transfer_sent_bytes_sum") > 0, "KV bytes moved");
    // the prompts share the chat template's opening: later ones take it from the prefix cache
    assertEquals(
        promptTokens,
        diff(p0, p1, "vllm:prompt_tokens_total") + diff(p0, p1, "vllm:prefix_cache_hits_total"),
        "prefill worker computed every prompt token not served from its prefix cache");
    assertEquals(
        promptTokens,
        diff(p0, p1, "vllm:prefix_cache_queries_total"),
        "every prompt token was looked up in the prefix cache");
    assertEquals(0, d1.sum("vllm:kv_cache_usage_perc"), "decode KV pool empty again");
    // Arrow memory: each worker's allocator (its total) holds what it held before the requests
    // once the last push let its buffers go; the pushes did use Arrow memory (the sender's peak).
    for (Map.Entry<String, PrometheusText> w : Map.of(prefill, p0, decode, d0).entrySet()) {
      String id = w.getKey().equals(prefill) ? "p0" : "d0";
      Map<String, String> total = Map.of("allocator", "worker-" + id);
      double baseline = w.getValue().sum("pdserve_arrow_allocated_bytes", total);
      assertTrue(baseline > 0, id + " holds its KV pool in Arrow memory");
      InJvmCluster.await(
          Duration.ofSeconds(10),
          () -> {
            try {
              return scrape(w.getKey()).sum("pdserve_arrow_allocated_bytes", total) == baseline;
            } catch (Exception e) {
              throw new AssertionError(e);
            }
          },
          id + "'s Arrow allocated bytes to return to " + (long) baseline);
    }
    assertTrue(
        scrape(prefill).sum("pdserve_arrow_peak_bytes", Map.of("allocator", "kv-transfer-client"))
            > 0,
        "the prefill worker's KV pushes allocated Arrow buffers");
    assertTrue(
        diff(p0, p1, "pdserve_expert_dispatch_seconds_count") > 0,
        "prefill dispatched to the shard");
    assertTrue(
        diff(d0, d1, "pdserve_expert_dispatch_seconds_count") > 0,
        "decode dispatched to the shard");
    assertTrue(
        diff(e0, e1, "pdserve_expert_tokens_total") > 0, "the shard counted tokens per expert");
    assertEquals(
        diff(e0, e1, "pdserve_expert_compute_seconds_count"),
        diff(p0, p1, "pdserve_expert_dispatch_seconds_count")
            + diff(d0, d1, "pdserve_expert_dispatch_seconds_count"),
        "the shard computed one dispatch per MoE layer dispatch of the workers");
  }

  static double diff(PrometheusText before, PrometheusText after, String name) {
    return after.sum(name) - before.sum(name);
  }

  /** Captures events of the {@code dev.pdserve} loggers (at TRACE) while installed. */
  static final class Capture extends AbstractAppender implements AutoCloseable {
    final ConcurrentLinkedQueue<LogEvent> events = new ConcurrentLinkedQueue<>();
    private final LoggerContext ctx = (LoggerContext) LogManager.getContext(false);

    Capture() {
      super("capture-" + UUID.randomUUID(), null, null, true, Property.EMPTY_ARRAY);
      start();
      Configuration cfg = ctx.getConfiguration();
      LoggerConfig lc =
          LoggerConfig.newBuilder()
              .withLoggerName("dev.pdserve")
              .withLevel(Level.TRACE)
              .withAdditivity(false)
              .withConfig(cfg)
              .build();
      lc.addAppender(this, Level.TRACE, null);
      cfg.addLogger("dev.pdserve", lc);
      ctx.updateLoggers();
    }

    @Override
    public void append(LogEvent event) {
      events.add(event.toImmutable());
    }

    @Override
    public void close() {
      ctx.getConfiguration().removeLogger("dev.pdserve");
      ctx.updateLoggers();
      stop();
    }
  }

  @Test
  void aRequestsIdIsInTheLogLinesOfEveryNodeThatServedIt() {
    String id = "log-probe-" + UUID.randomUUID().toString().substring(0, 8);
    List<LogEvent> events;
    try (Capture capture = new Capture()) {
      var it =
          cluster
              .blocking()
              .generate(
                  GenerateRequest.newBuilder()
                      .setRequestId(id)
                      .setPrompt("Where does my request go?")
                      .setParams(
                          SamplingParams.newBuilder()
                              .setTemperature(0)
                              .setMaxTokens(4)
                              .setIgnoreEos(true))
                      .build());
      while (it.hasNext()) {
        it.next();
      }
      // Decode and prefill log their last lines on their own threads, after the client has the
      // answer.
      InJvmCluster.await(
          Duration.ofSeconds(10),
          () ->
              capture.events.stream()
                  .anyMatch(
                      e ->
                          id.equals(e.getContextData().getValue(LogContext.REQUEST_ID))
                              && "d0".equals(e.getContextData().getValue(LogContext.NODE_ID))
                              && e.getMessage().getFormattedMessage().contains("finished")),
          "the decode node's line that " + id + " finished");
      events = List.copyOf(capture.events);
    }
    List<LogEvent> mine =
        events.stream()
            .filter(e -> id.equals(e.getContextData().getValue(LogContext.REQUEST_ID)))
            .toList();
    Set<String> nodes =
        mine.stream()
            .map(e -> String.valueOf((Object) e.getContextData().getValue(LogContext.NODE_ID)))
            .collect(Collectors.toCollection(TreeSet::new));
    assertEquals(
        Set.of("router", "p0", "d0", "e0"), nodes, "nodes whose log lines carry request_id " + id);

    // Every line that names the request carries its id in the context.
    List<String> unmarked =
        events.stream()
            .filter(
                e ->
                    e.getMessage().getFormattedMessage().contains(id)
                        && !id.equals(e.getContextData().getValue(LogContext.REQUEST_ID)))
            .map(
                e ->
                    e.getLoggerName()
                        + " ["
                        + e.getThreadName()
                        + "]: "
                        + e.getMessage().getFormattedMessage())
            .toList();
    assertTrue(
        unmarked.isEmpty(),
        "lines about " + id + " without request_id in their context: " + unmarked);

    // The JSON layout (PDSERVE_LOG_FORMAT=json) puts the context at the top level of each line.
    LoggerContext ctx = (LoggerContext) LogManager.getContext(false);
    JsonTemplateLayout json =
        JsonTemplateLayout.newBuilder()
            .setConfiguration(ctx.getConfiguration())
            .setEventTemplateUri("classpath:EcsLayout.json")
            .build();
    LogEvent decodeLine =
        mine.stream()
            .filter(e -> "d0".equals(e.getContextData().getValue(LogContext.NODE_ID)))
            .findFirst()
            .orElseThrow();
    String line = json.toSerializable(decodeLine);
    assertTrue(
        line.contains("\"request_id\":\"" + id + "\"") && line.contains("\"node_id\":\"d0\""),
        "JSON line: " + line);
    assertFalse(
        line.contains("\n") && line.indexOf('\n') < line.length() - 1,
        "one JSON object per line: " + line);
  }
}
