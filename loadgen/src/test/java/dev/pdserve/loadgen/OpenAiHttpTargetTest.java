package dev.pdserve.loadgen;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.pdserve.loadgen.dataset.DatasetConfig;
import dev.pdserve.loadgen.dataset.ImageOptions;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The OpenAI-compatible HTTP target against a real HTTP server on loopback that speaks the
 * streaming wire format (SSE chunks, a usage chunk, {@code [DONE]}; an HTTP error for every 10th
 * request): token counts come from the usage chunk, every chunk is a token arrival (a thinking
 * model's {@code reasoning_content} chunks too), and HTTP errors are counted by status.
 */
class OpenAiHttpTargetTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private HttpServer server;
  private final ConcurrentLinkedQueue<JsonNode> bodies = new ConcurrentLinkedQueue<>();
  private final AtomicInteger calls = new AtomicInteger();

  /** Chat chunks carry delta.reasoning_content, as a thinking model's stream does. */
  private volatile boolean thinking;

  @BeforeEach
  void start() throws IOException {
    server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    server.setExecutor(Executors.newFixedThreadPool(8));
    server.createContext(
        "/v1/models",
        ex ->
            reply(
                ex,
                200,
                "application/json",
                "{\"object\":\"list\",\"data\":[{\"id\":\"tiny-test\",\"object\":\"model\",\"max_model_len\":1024}]}"));
    server.createContext("/v1/completions", ex -> stream(ex, false));
    server.createContext("/v1/chat/completions", ex -> stream(ex, true));
    server.start();
  }

  @AfterEach
  void stop() {
    server.stop(0);
    ((ExecutorService) server.getExecutor()).shutdownNow();
  }

  private void stream(HttpExchange ex, boolean chat) throws IOException {
    JsonNode req = JSON.readTree(ex.getRequestBody());
    bodies.add(req);
    if (calls.incrementAndGet() % 10 == 0) {
      reply(
          ex,
          503,
          "application/json",
          "{\"error\":{\"message\":\"overloaded, retry later\",\"type\":\"ServiceUnavailable\"}}");
      return;
    }
    int n = req.get("max_tokens").asInt();
    int promptLen =
        chat
            ? req.get("messages").get(0).get("content").asText().length()
            : req.get("prompt").asText().length();
    ex.getResponseHeaders().add("Content-Type", "text/event-stream");
    ex.sendResponseHeaders(200, 0);
    try (OutputStream o = ex.getResponseBody()) {
      if (chat) {
        send(
            o, "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}");
      }
      for (int i = 0; i < n; i++) {
        String piece = "t" + i;
        send(
            o,
            chat
                ? "{\"choices\":[{\"index\":0,\"delta\":{\""
                    + (thinking ? "reasoning_content" : "content")
                    + "\":\""
                    + piece
                    + "\"},\"finish_reason\":"
                    + (i == n - 1 ? "\"length\"" : "null")
                    + "}]}"
                : "{\"choices\":[{\"index\":0,\"text\":\""
                    + piece
                    + "\",\"finish_reason\":"
                    + (i == n - 1 ? "\"length\"" : "null")
                    + "}]}");
        sleep(2);
      }
      send(
          o,
          "{\"choices\":[],\"usage\":{\"prompt_tokens\":"
              + promptLen
              + ",\"completion_tokens\":"
              + n
              + ",\"total_tokens\":"
              + (promptLen + n)
              + "}}");
      o.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
    }
  }

  private static void send(OutputStream o, String json) throws IOException {
    o.write(("data: " + json + "\n\n").getBytes(StandardCharsets.UTF_8));
    o.flush();
  }

  private static void reply(HttpExchange ex, int code, String type, String body)
      throws IOException {
    byte[] b = body.getBytes(StandardCharsets.UTF_8);
    ex.getResponseHeaders().add("Content-Type", type);
    ex.sendResponseHeaders(code, b.length);
    try (OutputStream o = ex.getResponseBody()) {
      o.write(b);
    }
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private BenchConfig config(String endpoint) {
    return new BenchConfig(
        null,
        "http://127.0.0.1:" + server.getAddress().getPort() + "/v1",
        endpoint,
        null,
        null,
        new DatasetConfig("random", 24, 6, 0.5, null, 0, 0, 0, 0, 0, 1, 1, 0, ImageOptions.NONE),
        200,
        1,
        8,
        0,
        40,
        0,
        2,
        7,
        2,
        List.of(99.9),
        Map.of("ttft", 5000.0),
        0,
        true,
        30,
        0);
  }

  @Test
  void completionsStreamIsMeasuredAndErrorsAreCountedByHttpStatus() throws Exception {
    Benchmark.Outcome o =
        new Benchmark(config("completions"), new PrintWriter(new StringWriter()), false).run();
    BenchSummary s = o.summary();
    assertEquals("tiny-test", o.model().id(), "model from /v1/models");
    assertEquals(40, s.requests());
    assertEquals(4, s.failed, "every 10th of 42 calls (2 warm-up) is a 503: calls 10, 20, 30, 40");
    assertEquals(Map.of("HTTP 503", 4L), s.failures);
    long expectedOut =
        o.results().stream().filter(RequestResult::ok).mapToLong(r -> r.outputTokens()).sum();
    assertEquals(expectedOut, s.totalOutputTokens);
    for (RequestResult r : o.results()) {
      if (r.ok()) {
        assertTrue(r.ttftNanos() > 0 && r.e2eNanos() >= r.ttftNanos());
        assertEquals(
            r.outputTokens() - 1, r.itlNanos().length, "one ITL per chunk after the first");
        assertEquals("length", r.finishReason());
      } else {
        assertEquals("overloaded, retry later", r.error());
      }
    }
    JsonNode first = bodies.peek();
    assertTrue(
        first.get("stream").asBoolean()
            && first.get("stream_options").get("include_usage").asBoolean()
            && first.get("ignore_eos").asBoolean());
    assertEquals("tiny-test", first.get("model").asText());
    assertEquals(36, s.goodRequests);
  }

  @Test
  void chatEndpointSendsMessagesAndSkipsTheRoleChunk() throws Exception {
    Benchmark.Outcome o =
        new Benchmark(config("chat"), new PrintWriter(new StringWriter()), false).run();
    assertTrue(bodies.stream().allMatch(b -> b.has("messages") && !b.has("prompt")));
    for (RequestResult r : o.results()) {
      if (r.ok()) {
        assertEquals(
            r.outputTokens() - 1, r.itlNanos().length, "the empty role chunk is not a token");
      }
    }
    assertEquals(36, o.summary().completed);
    assertEquals(36, o.summary().latency.get("ttft").count(), "every completed request has a TTFT");
    assertTrue(
        o.cluster().figures().stream()
            .allMatch(f -> f.value() == null && f.unavailable().contains("--admin")),
        "no admin address: cluster figures unavailable");
  }

  @Test
  void aThinkingModelsReasoningChunksAreTokens() throws Exception {
    thinking = true; // every chunk is delta.reasoning_content, none delta.content
    Benchmark.Outcome o =
        new Benchmark(config("chat"), new PrintWriter(new StringWriter()), false).run();
    assertEquals(36, o.summary().completed);
    for (RequestResult r : o.results()) {
      if (r.ok()) {
        assertTrue(r.ttftNanos() > 0 && r.e2eNanos() >= r.ttftNanos(), "TTFT " + r.ttftNanos());
        assertEquals(
            r.outputTokens() - 1,
            r.itlNanos().length,
            "one ITL per reasoning chunk after the first");
      }
    }
    assertEquals(36, o.summary().latency.get("ttft").count(), "every completed request has a TTFT");
  }
}
