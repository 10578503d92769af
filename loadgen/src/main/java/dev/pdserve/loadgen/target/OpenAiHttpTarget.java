package dev.pdserve.loadgen.target;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.loadgen.ApiKey;
import dev.pdserve.loadgen.ClientTls;
import dev.pdserve.loadgen.dataset.BenchImage;
import dev.pdserve.loadgen.dataset.BenchRequest;
import dev.pdserve.loadgen.dataset.TokenSpace;
import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Flow;

/**
 * Any OpenAI-compatible HTTP server: {@code POST /v1/completions} (or {@code /v1/chat/completions}
 * with endpoint {@code chat}) with {@code "stream": true} and {@code stream_options.include_usage},
 * read as server-sent events with {@code java.net.http}. Every SSE chunk that carries text is one
 * token arrival; the final usage chunk, when the server sends one, gives the exact token counts.
 * Prompts travel as text; a prompt's images (chat only) as {@code image_url} parts with data URLs.
 */
public final class OpenAiHttpTarget implements Target {
  private static final ObjectMapper JSON = new ObjectMapper();

  private final URI base;
  private final boolean chat;
  private final HttpClient http;
  private final ApiKey apiKey;
  private final ExecutorService executor;

  /**
   * @param baseUrl e.g. {@code http://127.0.0.1:8000} (a trailing {@code /v1} is accepted)
   * @param endpoint {@code completions} or {@code chat}
   */
  public OpenAiHttpTarget(String baseUrl, String endpoint, int worker) {
    this(baseUrl, endpoint, worker, ApiKey.NONE);
  }

  /** As above, every request presenting {@code apiKey} ({@code Authorization: Bearer KEY}). */
  public OpenAiHttpTarget(String baseUrl, String endpoint, int worker, ApiKey apiKey) {
    this(baseUrl, endpoint, worker, apiKey, ClientTls.PLAINTEXT);
  }

  /** As above; an {@code https://} base URL is reached with {@code tls}'s context. */
  public OpenAiHttpTarget(
      String baseUrl, String endpoint, int worker, ApiKey apiKey, ClientTls tls) {
    this.apiKey = apiKey;
    String b = baseUrl.endsWith("/") ? baseUrl.substring(0, baseUrl.length() - 1) : baseUrl;
    if (b.endsWith("/v1")) {
      b = b.substring(0, b.length() - 3);
    }
    try {
      this.base = URI.create(b);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(
          "--base-url " + baseUrl + " is not a URL: " + e.getMessage());
    }
    if (base.getScheme() == null
        || !(base.getScheme().equals("http") || base.getScheme().equals("https"))
        || base.getHost() == null) {
      throw new IllegalArgumentException(
          "--base-url must be http://HOST:PORT or https://HOST:PORT, got " + baseUrl);
    }
    if (!endpoint.equals("completions") && !endpoint.equals("chat")) {
      throw new IllegalArgumentException("--endpoint must be completions or chat, got " + endpoint);
    }
    this.chat = endpoint.equals("chat");
    this.executor =
        Executors.newCachedThreadPool(
            r -> {
              Thread t = new Thread(r, "bench-http-" + worker);
              t.setDaemon(true);
              return t;
            });
    HttpClient.Builder client =
        HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(10))
            .executor(executor);
    tls.https().ifPresent(client::sslContext);
    this.http = client.build();
  }

  @Override
  public ModelInfo model(String requested) {
    if (requested != null && !requested.isEmpty()) {
      return new ModelInfo(requested, 0, 0);
    }
    HttpResponse<String> r;
    try {
      r =
          http.send(
              apiKey
                  .apply(HttpRequest.newBuilder(base.resolve("/v1/models")))
                  .timeout(Duration.ofSeconds(30))
                  .GET()
                  .build(),
              HttpResponse.BodyHandlers.ofString());
    } catch (IOException e) {
      throw new IllegalStateException(
          "cannot reach "
              + base
              + "/v1/models: "
              + e
              + " (is --base-url right and the server up? or pass --model)",
          e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted", e);
    }
    if (r.statusCode() != 200) {
      throw new IllegalStateException(
          base
              + "/v1/models answered HTTP "
              + r.statusCode()
              + ": "
              + r.body()
              + " (pass --model to skip the lookup)");
    }
    try {
      JsonNode first = JSON.readTree(r.body()).path("data").path(0);
      if (first.isMissingNode()) {
        throw new IllegalStateException(base + "/v1/models lists no model (pass --model)");
      }
      return new ModelInfo(first.path("id").asText(), first.path("max_model_len").asInt(0), 0);
    } catch (IOException e) {
      throw new IllegalStateException(
          base + "/v1/models did not answer JSON: " + e.getMessage(), e);
    }
  }

  @Override
  public void send(RequestTimer timer, RequestOptions options) {
    BenchRequest r = timer.request();
    String prompt = r.promptText() != null ? r.promptText() : TokenSpace.render(r.promptIds());
    ObjectNode body = JSON.createObjectNode();
    body.put("model", options.model());
    if (chat) {
      ArrayNode msgs = body.putArray("messages");
      ObjectNode user = msgs.addObject().put("role", "user");
      if (r.images().isEmpty()) {
        user.put("content", prompt);
      } else {
        user.set("content", contentParts(r.images(), prompt));
      }
      body.put("max_completion_tokens", r.outputTokens());
    } else {
      body.put("prompt", prompt);
    }
    body.put("max_tokens", r.outputTokens());
    body.put("temperature", options.temperature());
    body.put("stream", true);
    body.putObject("stream_options").put("include_usage", true);
    if (options.ignoreEos()) {
      body.put("ignore_eos", true);
    }
    HttpRequest req =
        apiKey
            .apply(
                HttpRequest.newBuilder(
                    base.resolve(chat ? "/v1/chat/completions" : "/v1/completions")))
            .timeout(Duration.ofMillis((long) (options.timeoutSeconds() * 1000)))
            .header("Content-Type", "application/json")
            .header("Accept", "text/event-stream")
            .header("X-Request-Id", timer.requestId())
            .POST(HttpRequest.BodyPublishers.ofString(body.toString()))
            .build();
    timer.sent();
    SseReader reader = new SseReader(timer, chat);
    http.sendAsync(
            req,
            info ->
                info.statusCode() == 200
                    ? HttpResponse.BodySubscribers.fromLineSubscriber(reader)
                    : HttpResponse.BodySubscribers.mapping(
                        HttpResponse.BodySubscribers.ofString(StandardCharsets.UTF_8),
                        s -> {
                          timer.fail("HTTP " + info.statusCode(), errorMessage(s));
                          return null;
                        }))
        .whenComplete(
            (resp, err) -> {
              if (err != null) {
                Throwable c =
                    err instanceof CompletionException && err.getCause() != null
                        ? err.getCause()
                        : err;
                timer.fail(
                    c instanceof HttpTimeoutException
                        ? "TIMEOUT"
                        : c instanceof ConnectException ? "CONNECTION_ERROR" : "IO_ERROR",
                    String.valueOf(c));
              } else {
                reader.end();
              }
            });
  }

  /**
   * The parts of a user message with images, as the official OpenAI client sends them: each image
   * as {@code {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}}, before the
   * text part.
   */
  static ArrayNode contentParts(List<BenchImage> images, String text) {
    ArrayNode parts = JSON.createArrayNode();
    Base64.Encoder b64 = Base64.getEncoder();
    for (BenchImage img : images) {
      ObjectNode p = parts.addObject().put("type", "image_url");
      p.putObject("image_url")
          .put("url", "data:" + img.mediaType() + ";base64," + b64.encodeToString(img.data()));
    }
    parts.addObject().put("type", "text").put("text", text);
    return parts;
  }

  private static String errorMessage(String body) {
    try {
      JsonNode n = JSON.readTree(body);
      String m = n.path("error").path("message").asText("");
      return m.isEmpty() ? body : m;
    } catch (IOException | RuntimeException e) {
      return body;
    }
  }

  /** Reads {@code data: {...}} lines of one stream. */
  private static final class SseReader implements Flow.Subscriber<String> {
    private final RequestTimer timer;
    private final boolean chat;
    private String finishReason = "";
    private boolean done;

    SseReader(RequestTimer timer, boolean chat) {
      this.timer = timer;
      this.chat = chat;
    }

    @Override
    public void onSubscribe(Flow.Subscription s) {
      s.request(Long.MAX_VALUE);
    }

    @Override
    public void onNext(String line) {
      if (!line.startsWith("data:")) {
        return; // comments, event names, blank separators
      }
      String data = line.substring(5).trim();
      if (data.equals("[DONE]")) {
        done = true;
        return;
      }
      JsonNode n;
      try {
        n = JSON.readTree(data);
      } catch (IOException e) {
        timer.fail("BAD_RESPONSE", "unparseable SSE data: " + data);
        return;
      }
      if (n.has("error")) {
        timer.fail(
            "STREAM_ERROR", n.path("error").path("message").asText(n.path("error").toString()));
        return;
      }
      JsonNode choice = n.path("choices").path(0);
      if (!choice.isMissingNode()) {
        // A thinking model's chat stream (ERNIE with enable_thinking, the default) writes its
        // thought as delta.reasoning_content: those chunks are tokens too (vLLM's bench counts
        // them), or a request that never leaves its thought would have no TTFT at all.
        String text =
            chat
                ? choice.path("delta").path("content").asText("")
                    + choice.path("delta").path("reasoning_content").asText("")
                : choice.path("text").asText("");
        if (!text.isEmpty()) {
          timer.tokens(1);
        }
        String fr = choice.path("finish_reason").asText("");
        if (!fr.isEmpty() && !fr.equals("null")) {
          finishReason = fr;
        }
      }
      JsonNode u = n.path("usage");
      if (u.isObject()) {
        timer.usage(
            u.path("prompt_tokens").asInt(-1),
            u.path("completion_tokens").asInt(-1),
            u.path("prompt_tokens_details").path("cached_tokens").asInt(0));
      }
    }

    @Override
    public void onError(Throwable t) {
      timer.fail("IO_ERROR", String.valueOf(t));
    }

    @Override
    public void onComplete() {}

    void end() {
      if (done || !finishReason.isEmpty()) {
        timer.succeed(finishReason);
      } else {
        timer.fail("NO_COMPLETION", "the event stream ended without [DONE]");
      }
    }
  }

  @Override
  public String describe() {
    return (chat ? "openai-chat " : "openai ") + base;
  }

  @Override
  public void close() {
    executor.shutdownNow();
  }
}
