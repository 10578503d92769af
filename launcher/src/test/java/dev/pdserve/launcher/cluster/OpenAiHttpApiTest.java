package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.google.protobuf.ByteString;
import dev.pdserve.api.v1.ChatMessage;
import dev.pdserve.api.v1.ChatMessages;
import dev.pdserve.api.v1.ContentPart;
import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.Image;
import dev.pdserve.api.v1.SamplingParams;
import dev.pdserve.api.v1.TokenIds;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.internal.v1.AdminServiceGrpc;
import dev.pdserve.internal.v1.ListNodesRequest;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.launcher.node.RouterNode;
import dev.pdserve.launcher.node.WorkerNode;
import dev.pdserve.model.engine.GenerateResult;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.vision.EncodedImage;
import dev.pdserve.model.vision.TestImages;
import dev.pdserve.router.RouterOptions;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The OpenAI-compatible HTTP API of a real router over a 1P/1D cluster in this JVM, driven with
 * java.net.http: chat and completions (whole and streamed), models, every error status, and the
 * greedy tokens equal to the gRPC API's for the same request.
 */
class OpenAiHttpApiTest {
  static final ObjectMapper JSON = new ObjectMapper();
  static final int THINK_END = 6; // the byte tokenizer's </think>
  static InJvmCluster cluster;
  static HttpClient http;

  static LoadedModel model;
  static ReferenceEngine reference;

  @BeforeAll
  static void start() throws Exception {
    cluster = InJvmCluster.start(1, 1);
    http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    reference = new ReferenceEngine(model, OrtRuntime.shared());
  }

  @AfterAll
  static void stop() {
    if (reference != null) {
      reference.close();
      model.close();
    }
    if (cluster != null) {
      cluster.close();
    }
  }

  @AfterEach
  void noKvLeaks() {
    cluster.awaitNoKvHeld();
  }

  // ---- helpers ----

  static HttpResponse<String> postTo(String base, String path, String body, String... headers)
      throws Exception {
    HttpRequest.Builder b =
        HttpRequest.newBuilder(URI.create(base + path))
            .timeout(Duration.ofSeconds(120))
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(body));
    for (int i = 0; i < headers.length; i += 2) {
      b.header(headers[i], headers[i + 1]);
    }
    return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
  }

  static HttpResponse<String> post(String path, String body, String... headers) throws Exception {
    return postTo(cluster.router.httpUrl(), path, body, headers);
  }

  static HttpResponse<String> get(String path) throws Exception {
    return http.send(
        HttpRequest.newBuilder(URI.create(cluster.router.httpUrl() + path)).GET().build(),
        HttpResponse.BodyHandlers.ofString());
  }

  static JsonNode json(HttpResponse<String> r) throws Exception {
    return JSON.readTree(r.body());
  }

  static String chatBody(String user, int maxTokens, boolean stream, String extra) {
    return "{\"model\": \"tiny\", \"messages\": [{\"role\": \"user\", \"content\": "
        + quote(user)
        + "}], \"temperature\": 0, "
        + "\"max_tokens\": "
        + maxTokens
        + ", \"ignore_eos\": true, \"stream\": "
        + stream
        + (extra.isEmpty() ? "" : ", " + extra)
        + "}";
  }

  static String quote(String s) {
    try {
      return JSON.writeValueAsString(s);
    } catch (Exception e) {
      throw new AssertionError(e);
    }
  }

  /**
   * The events of an SSE body, checking the framing: only {@code data: ...} events, ending with
   * [DONE].
   */
  static List<JsonNode> events(HttpResponse<String> r) throws Exception {
    assertEquals(200, r.statusCode(), r.body());
    assertTrue(
        r.headers().firstValue("content-type").orElse("").startsWith("text/event-stream"),
        r.headers().toString());
    String body = r.body();
    assertTrue(
        body.endsWith("data: [DONE]\n\n"), "stream must end with data: [DONE]: " + tail(body));
    String[] parts = body.split("\n\n", -1);
    assertEquals("", parts[parts.length - 1]);
    List<JsonNode> out = new ArrayList<>();
    for (int i = 0; i < parts.length - 2; i++) {
      assertTrue(
          parts[i].startsWith("data: ") && !parts[i].contains("\n"),
          "not one data line: '" + parts[i] + "'");
      out.add(JSON.readTree(parts[i].substring(6)));
    }
    return out;
  }

  static String tail(String s) {
    return s.length() < 300 ? s : "..." + s.substring(s.length() - 300);
  }

  static GenerateRequest grpcChat(String id, String user, int maxTokens, boolean thinking) {
    return GenerateRequest.newBuilder()
        .setRequestId(id)
        .setMessages(
            ChatMessages.newBuilder()
                .addMessages(ChatMessage.newBuilder().setRole("user").setContent(user)))
        .setParams(
            SamplingParams.newBuilder()
                .setTemperature(0)
                .setMaxTokens(maxTokens)
                .setIgnoreEos(true))
        .setEnableThinking(thinking)
        .build();
  }

  static int[] ints(JsonNode array) {
    int[] out = new int[array.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = array.get(i).asInt();
    }
    return out;
  }

  static void assertError(HttpResponse<String> r, int status, String type, String messagePart)
      throws Exception {
    assertEquals(status, r.statusCode(), r.body());
    assertTrue(
        r.headers().firstValue("content-type").orElse("").startsWith("application/json"),
        r.headers().toString());
    JsonNode e = json(r).get("error");
    assertNotNull(e, "no error object in " + r.body());
    assertEquals(type, e.get("type").asText(), r.body());
    assertTrue(
        e.get("message").asText().contains(messagePart),
        "expected '" + messagePart + "' in " + e.get("message"));
    assertTrue(e.has("param") && e.has("code"), "error needs param and code: " + r.body());
  }

  static int heldBlocks() {
    int held = 0;
    for (WorkerNode w : cluster.prefill) {
      held += w.pool().totalBlocks() - w.pool().freeBlocks();
    }
    for (WorkerNode w : cluster.decode) {
      held += w.pool().totalBlocks() - w.pool().freeBlocks();
    }
    return held;
  }

  // ---- chat ----

  @Test
  void chatCompletionGreedyTokensEqualTheGrpcApisWithUsage() throws Exception {
    String user = "Name three colours.";
    HttpResponse<String> r =
        post(
            "/v1/chat/completions",
            chatBody(
                user,
                12,
                false,
                "\"return_token_ids\": true, \"chat_template_kwargs\": {\"enable_thinking\": false}"));
    assertEquals(200, r.statusCode(), r.body());
    assertTrue(
        r.headers().firstValue("X-Request-Id").orElse("").startsWith("chatcmpl-"),
        r.headers().toString());
    JsonNode doc = json(r);
    InJvmCluster.Result grpc = cluster.generate(grpcChat("grpc-chat", user, 12, false));
    GenerateResult ref =
        reference.generate(
            new dev.pdserve.model.engine.GenerateRequest(
                "ref-chat",
                Prompt.user(user),
                dev.pdserve.model.sampling.SamplingParams.builder()
                    .temperature(0)
                    .maxTokens(12)
                    .ignoreEos(true)
                    .build(),
                false));

    assertEquals("chat.completion", doc.get("object").asText());
    assertTrue(doc.get("id").asText().startsWith("chatcmpl-"));
    assertEquals("tiny", doc.get("model").asText());
    JsonNode choice = doc.get("choices").get(0);
    assertArrayEquals(
        ref.tokenIds(),
        ints(choice.get("token_ids")),
        "HTTP greedy tokens differ from the reference engine's");
    assertArrayEquals(
        grpc.tokenIds(), ints(choice.get("token_ids")), "HTTP greedy tokens differ from gRPC's");
    assertEquals("assistant", choice.get("message").get("role").asText());
    assertEquals(ref.text(), choice.get("message").get("content").asText());
    assertEquals(grpc.text(), choice.get("message").get("content").asText());
    assertFalse(
        choice.get("message").has("reasoning_content"), "thinking off: no reasoning_content");
    assertEquals("length", choice.get("finish_reason").asText());
    JsonNode usage = doc.get("usage");
    assertEquals(
        grpc.completion().getUsage().getPromptTokens(), usage.get("prompt_tokens").asInt());
    assertEquals(12, usage.get("completion_tokens").asInt());
    assertEquals(usage.get("prompt_tokens").asInt() + 12, usage.get("total_tokens").asInt());
    assertEquals(0, usage.get("prompt_tokens_details").get("cached_tokens").asInt());
  }

  @Test
  void chatWithThinkingPutsTheThoughtInReasoningContent() throws Exception {
    String user = "Think first, then answer: 2+2?";
    JsonNode doc =
        json(post("/v1/chat/completions", chatBody(user, 16, false, "\"return_token_ids\": true")));
    InJvmCluster.Result grpc = cluster.generate(grpcChat("grpc-think", user, 16, true));
    JsonNode choice = doc.get("choices").get(0);
    assertArrayEquals(grpc.tokenIds(), ints(choice.get("token_ids")));
    String reasoning = choice.get("message").get("reasoning_content").asText();
    String content = choice.get("message").get("content").asText();
    // </think> is a special token (no text): the two parts are the whole text, split where it came
    assertEquals(grpc.text(), reasoning + content);
    if (Arrays.stream(grpc.tokenIds()).noneMatch(t -> t == THINK_END)) {
      assertEquals(grpc.text(), reasoning, "no </think> yet: everything is reasoning");
      assertEquals("", content);
    }
  }

  @Test
  void streamedChatIsSseChunksEndingInDoneWithUsageAndTheSameTokens() throws Exception {
    String user = "Stream a short answer.";
    for (boolean thinking : new boolean[] {true, false}) {
      HttpResponse<String> r =
          post(
              "/v1/chat/completions",
              chatBody(
                  user,
                  14,
                  true,
                  "\"return_token_ids\": true, \"stream_options\": {\"include_usage\": true}, \"chat_template_kwargs\": {\"enable_thinking\": "
                      + thinking
                      + "}"));
      List<JsonNode> chunks = events(r);
      InJvmCluster.Result grpc =
          cluster.generate(grpcChat("grpc-stream-" + thinking, user, 14, thinking));

      String id = chunks.get(0).get("id").asText();
      assertTrue(id.startsWith("chatcmpl-"), id);
      assertEquals(
          "assistant",
          chunks.get(0).get("choices").get(0).get("delta").get("role").asText(),
          "first delta carries the role");
      StringBuilder reasoning = new StringBuilder();
      StringBuilder content = new StringBuilder();
      List<Integer> ids = new ArrayList<>();
      String finish = null;
      for (int i = 0; i < chunks.size() - 1; i++) {
        JsonNode c = chunks.get(i);
        assertEquals("chat.completion.chunk", c.get("object").asText());
        assertEquals(id, c.get("id").asText(), "every chunk has the same id");
        assertTrue(
            c.has("usage") && c.get("usage").isNull(),
            "include_usage: usage is null on content chunks");
        JsonNode choice = c.get("choices").get(0);
        JsonNode delta = choice.get("delta");
        reasoning.append(delta.path("reasoning_content").asText(""));
        content.append(delta.path("content").asText(""));
        choice.path("token_ids").forEach(t -> ids.add(t.asInt()));
        if (!choice.get("finish_reason").isNull()) {
          assertEquals(chunks.size() - 2, i, "finish_reason comes on the last choice chunk");
          finish = choice.get("finish_reason").asText();
        }
      }
      assertEquals("length", finish);
      assertArrayEquals(
          grpc.tokenIds(),
          ids.stream().mapToInt(Integer::intValue).toArray(),
          "streamed tokens differ from gRPC's (thinking " + thinking + ")");
      assertEquals(grpc.text(), reasoning.toString() + content);
      if (!thinking) {
        assertEquals("", reasoning.toString(), "thinking off: no reasoning_content");
      } else if (Arrays.stream(grpc.tokenIds()).noneMatch(t -> t == THINK_END)) {
        assertEquals("", content.toString(), "thinking on, no </think>: everything is reasoning");
      }
      JsonNode last = chunks.get(chunks.size() - 1);
      assertEquals(0, last.get("choices").size(), "the usage chunk has no choices");
      assertEquals(14, last.get("usage").get("completion_tokens").asInt());
      assertEquals(
          grpc.completion().getUsage().getPromptTokens(),
          last.get("usage").get("prompt_tokens").asInt());
    }
  }

  @Test
  void textPartsAreJoinedAndImagePartsAreTaken() throws Exception {
    String parts =
        "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Hello\"}, {\"type\": \"text\", \"text\": \"there\"}]}],"
            + " \"temperature\": 0, \"max_tokens\": 6, \"ignore_eos\": true, \"return_token_ids\": true}";
    JsonNode doc = json(post("/v1/chat/completions", parts));
    InJvmCluster.Result grpc = cluster.generate(grpcChat("grpc-parts", "Hello\nthere", 6, true));
    assertArrayEquals(grpc.tokenIds(), ints(doc.get("choices").get(0).get("token_ids")));

    // The body the official OpenAI python client sends for an image message (a data URL), with
    // and without "detail": the same tokens as the gRPC API's Image part and the reference's.
    EncodedImage img = TestImages.png(64, 40, 7);
    String url = "data:image/png;base64," + Base64.getEncoder().encodeToString(img.bytes());
    GenerateRequest grpcImage =
        GenerateRequest.newBuilder()
            .setRequestId("grpc-image")
            .setMessages(
                ChatMessages.newBuilder()
                    .addMessages(
                        ChatMessage.newBuilder()
                            .setRole("user")
                            .addParts(ContentPart.newBuilder().setText("What is in this image?"))
                            .addParts(
                                ContentPart.newBuilder()
                                    .setImage(
                                        Image.newBuilder()
                                            .setData(ByteString.copyFrom(img.bytes()))
                                            .setMediaType("image/png")))))
            .setParams(
                SamplingParams.newBuilder().setTemperature(0).setMaxTokens(8).setIgnoreEos(true))
            .build();
    int[] viaGrpc = cluster.generate(grpcImage).tokenIds();
    int[] ref =
        reference
            .generate(
                new dev.pdserve.model.engine.GenerateRequest(
                    "ref-image",
                    new Prompt.Messages(
                        List.of(
                            dev.pdserve.model.tokenizer.ChatMessage.userParts(
                                dev.pdserve.model.tokenizer.ContentPart.text(
                                    "What is in this image?"),
                                dev.pdserve.model.tokenizer.ContentPart.image(img)))),
                    dev.pdserve.model.sampling.SamplingParams.builder()
                        .temperature(0)
                        .maxTokens(8)
                        .ignoreEos(true)
                        .build(),
                    true))
            .tokenIds();
    assertArrayEquals(ref, viaGrpc, "gRPC image part vs the reference engine");
    for (String imagePart :
        List.of(
            "{\"type\": \"image_url\", \"image_url\": {\"url\": \"" + url + "\"}}",
            "{\"type\": \"image_url\", \"image_url\": {\"url\": \""
                + url
                + "\", \"detail\": \"high\"}}")) {
      String body =
          "{\"model\": \""
              + cluster.router.router().model().name()
              + "\", \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"What is in this image?\"}, "
              + imagePart
              + "]}], \"temperature\": 0, \"max_tokens\": 8, \"ignore_eos\": true, \"return_token_ids\": true}";
      HttpResponse<String> r = post("/v1/chat/completions", body);
      assertEquals(200, r.statusCode(), r.body());
      assertArrayEquals(viaGrpc, ints(json(r).get("choices").get(0).get("token_ids")), imagePart);
    }

    String broken =
        "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"What is this?\"},"
            + " {\"type\": \"image_url\", \"image_url\": {\"url\": \"data:image/png;base64,AAAA\"}}]}]}";
    assertError(
        post("/v1/chat/completions", broken),
        400,
        "invalid_request_error",
        "messages[0].content[1]");
    String fetched =
        "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": \"https://example.com/cat.png\"}}]}]}";
    assertError(
        post("/v1/chat/completions", fetched),
        400,
        "invalid_request_error",
        "pdserve.router.images.fetch-enabled is false");
  }

  // ---- completions and models ----

  @Test
  void completionsTakeTextOrTokenPromptsWholeOrStreamed() throws Exception {
    String prompt = "The quick brown fox";
    GenerateRequest grpcReq =
        GenerateRequest.newBuilder()
            .setRequestId("grpc-cmpl")
            .setPrompt(prompt)
            .setParams(
                SamplingParams.newBuilder().setTemperature(0).setMaxTokens(10).setIgnoreEos(true))
            .build();
    InJvmCluster.Result grpc = cluster.generate(grpcReq);

    JsonNode doc =
        json(
            post(
                "/v1/completions",
                "{\"prompt\": "
                    + quote(prompt)
                    + ", \"temperature\": 0, \"max_tokens\": 10,"
                    + " \"ignore_eos\": true, \"return_token_ids\": true, \"logprobs\": 0}"));
    assertEquals("text_completion", doc.get("object").asText());
    JsonNode choice = doc.get("choices").get(0);
    assertArrayEquals(grpc.tokenIds(), ints(choice.get("token_ids")));
    assertEquals(grpc.text(), choice.get("text").asText());
    assertEquals(10, choice.get("logprobs").get("token_logprobs").size());
    assertTrue(choice.get("logprobs").get("token_logprobs").get(0).asDouble() <= 0);
    assertEquals(
        grpc.completion().getUsage().getPromptTokens(),
        doc.get("usage").get("prompt_tokens").asInt());

    int[] promptIds =
        ints(
            JSON.readTree(
                "["
                    + String.join(
                        ",", prompt.chars().mapToObj(c -> Integer.toString(32 + c)).toList())
                    + "]"));
    GenerateRequest grpcTokens =
        grpcReq.toBuilder()
            .setRequestId("grpc-cmpl-ids")
            .setPromptTokenIds(
                TokenIds.newBuilder().addAllIds(Arrays.stream(promptIds).boxed().toList()))
            .build();
    assertArrayEquals(
        grpc.tokenIds(),
        cluster.generate(grpcTokens).tokenIds(),
        "byte tokens of the text are the same prompt");
    JsonNode byIds =
        json(
            post(
                "/v1/completions",
                "{\"prompt\": "
                    + JSON.writeValueAsString(promptIds)
                    + ", \"temperature\": 0, \"max_tokens\": 10, \"ignore_eos\": true, \"return_token_ids\": true}"));
    assertArrayEquals(grpc.tokenIds(), ints(byIds.get("choices").get(0).get("token_ids")));

    List<JsonNode> chunks =
        events(
            post(
                "/v1/completions",
                "{\"prompt\": "
                    + quote(prompt)
                    + ", \"temperature\": 0, \"max_tokens\": 10,"
                    + " \"ignore_eos\": true, \"stream\": true, \"stream_options\": {\"include_usage\": true}}"));
    StringBuilder text = new StringBuilder();
    for (JsonNode c : chunks.subList(0, chunks.size() - 1)) {
      assertEquals("text_completion", c.get("object").asText());
      text.append(c.get("choices").get(0).get("text").asText());
    }
    assertEquals(grpc.text(), text.toString());
    assertEquals(
        "length",
        chunks.get(chunks.size() - 2).get("choices").get(0).get("finish_reason").asText());
    assertEquals(10, chunks.get(chunks.size() - 1).get("usage").get("completion_tokens").asInt());
  }

  @Test
  void healthAnswersAndTheAdminListingPublishesTheHttpUrl() throws Exception {
    HttpResponse<String> h = get("/health");
    assertEquals(200, h.statusCode(), h.body());
    assertEquals("ok", json(h).get("status").asText());
    List<NodeStatus> nodes =
        AdminServiceGrpc.newBlockingStub(cluster.channel)
            .withDeadlineAfter(10, TimeUnit.SECONDS)
            .listNodes(ListNodesRequest.getDefaultInstance())
            .getNodesList();
    NodeStatus self =
        nodes.stream()
            .filter(n -> n.getRole().equals("router"))
            .findFirst()
            .orElseThrow(() -> new AssertionError("no router in " + nodes));
    assertEquals(cluster.router.httpUrl(), self.getHttpUrl());
    assertTrue(self.getHttpUrl().matches("http://127\\.0\\.0\\.1:\\d+"), self.getHttpUrl());
  }

  @Test
  void modelsListsTheServedModel() throws Exception {
    HttpResponse<String> r = get("/v1/models");
    assertEquals(200, r.statusCode(), r.body());
    JsonNode doc = json(r);
    assertEquals("list", doc.get("object").asText());
    assertEquals("tiny", doc.get("data").get(0).get("id").asText());
    assertEquals("model", doc.get("data").get(0).get("object").asText());
    assertEquals(1024, doc.get("data").get(0).get("max_model_len").asInt());
    assertEquals(200, get("/v1/models/tiny").statusCode());
    assertError(get("/v1/models/gpt-4"), 404, "invalid_request_error", "does not exist");
  }

  // ---- errors ----

  @Test
  void badRequestsGet400InOpenAisErrorShapeNamingTheField() throws Exception {
    HttpResponse<String> r =
        post(
            "/v1/chat/completions",
            chatBody("hi", 4, false, "\"temperature\": -1").replace("\"temperature\": 0, ", ""));
    assertError(r, 400, "invalid_request_error", "temperature must be >= 0");
    assertEquals("temperature", json(r).get("error").get("param").asText());
    assertError(
        post("/v1/chat/completions", chatBody("hi", 4, false, "\"n\": 2")),
        400,
        "invalid_request_error",
        "n must be 1");
    assertError(
        post("/v1/chat/completions", chatBody("hi", 4, false, "\"top_p\": \"high\"")),
        400,
        "invalid_request_error",
        "top_p must be a number");
    assertError(
        post("/v1/chat/completions", "{\"messages\": ["),
        400,
        "invalid_request_error",
        "not valid JSON");
    assertError(
        post("/v1/chat/completions", "{\"messages\": []}"),
        400,
        "invalid_request_error",
        "messages is empty");
    assertError(
        post("/v1/completions", "{\"prompt\": \"\"}"),
        400,
        "invalid_request_error",
        "prompt is empty");
    assertError(
        post("/v1/completions", "{\"prompt\": \"hi\", \"max_tokens\": 0}"),
        400,
        "invalid_request_error",
        "max_tokens must be >= 1");
  }

  @Test
  void anOverLongPromptGetsTheContextLengthWordingClientsParse() throws Exception {
    HttpResponse<String> r =
        post("/v1/completions", "{\"prompt\": \"" + "x".repeat(1100) + "\", \"max_tokens\": 4}");
    assertError(r, 400, "invalid_request_error", "maximum context length");
    JsonNode e = json(r).get("error");
    assertEquals(
        "This model's maximum context length is 1024 tokens. However, you requested 1104 tokens (1100 in the messages, 4 in the"
            + " completion). Please reduce the length of the messages or completion.",
        e.get("message").asText());
    assertEquals("context_length_exceeded", e.get("code").asText());
    assertEquals("prompt", e.get("param").asText());
    HttpResponse<String> chat =
        post("/v1/chat/completions", chatBody("y".repeat(1000), 100, false, ""));
    assertError(
        chat,
        400,
        "invalid_request_error",
        "This model's maximum context length is 1024 tokens. However, you requested");
    assertEquals("messages", json(chat).get("error").get("param").asText());
  }

  @Test
  void unknownModelOrPathIs404WrongMethodIs405TooLargeIs413() throws Exception {
    HttpResponse<String> model =
        post("/v1/chat/completions", chatBody("hi", 4, false, "").replace("\"tiny\"", "\"gpt-4\""));
    assertError(model, 404, "invalid_request_error", "The model `gpt-4` does not exist");
    assertEquals("model_not_found", json(model).get("error").get("code").asText());
    assertError(
        post("/v1/embeddings", "{}"),
        404,
        "invalid_request_error",
        "Invalid URL (POST /v1/embeddings)");
    HttpResponse<String> wrong = get("/v1/chat/completions");
    assertError(wrong, 405, "invalid_request_error", "use POST");
    assertEquals("POST", wrong.headers().firstValue("Allow").orElse(""));
    HttpResponse<String> big =
        post("/v1/completions", "{\"prompt\": \"" + "z".repeat(49 << 20) + "\"}");
    assertError(
        big,
        413,
        "invalid_request_error",
        "larger than this server's limit of 50331648 bytes (pdserve.http.max-body-bytes)");
    // the connection pool and the server are fine afterwards
    assertEquals(200, get("/v1/models").statusCode());
  }

  @Test
  void aServedModelNameIsListedAnsweredAndRequired() throws Exception {
    try (RouterNode named =
        RouterNode.start(
            cluster.config(
                "router",
                "router-named",
                Map.of("cluster.lite-member", "true", "model.served-name", "ernie-local")),
            RouterOptions.defaults())) {
      HttpResponse<String> models =
          http.send(
              HttpRequest.newBuilder(URI.create(named.httpUrl() + "/v1/models")).GET().build(),
              HttpResponse.BodyHandlers.ofString());
      assertEquals(200, models.statusCode(), models.body());
      JsonNode data = json(models).get("data");
      assertEquals(1, data.size(), models.body());
      assertEquals("ernie-local", data.get(0).get("id").asText());
      HttpResponse<String> ok =
          postTo(
              named.httpUrl(),
              "/v1/completions",
              "{\"model\": \"ernie-local\", \"prompt\": \"hi\", \"max_tokens\": 2}");
      assertEquals(200, ok.statusCode(), ok.body());
      assertEquals("ernie-local", json(ok).get("model").asText());
      HttpResponse<String> chat =
          postTo(
              named.httpUrl(),
              "/v1/chat/completions",
              chatBody("hi", 2, false, "").replace("\"tiny\"", "\"ernie-local\""));
      assertEquals(200, chat.statusCode(), chat.body());
      assertEquals("ernie-local", json(chat).get("model").asText());
      HttpResponse<String> preset =
          postTo(
              named.httpUrl(),
              "/v1/completions",
              "{\"model\": \"tiny\", \"prompt\": \"hi\", \"max_tokens\": 2}");
      assertError(preset, 404, "invalid_request_error", "The model `tiny` does not exist");
      assertEquals("model_not_found", json(preset).get("error").get("code").asText());
    }
  }

  @Test
  void theBodyLimitIsConfigurable() throws Exception {
    try (RouterNode small =
        RouterNode.start(
            cluster.config(
                "router",
                "router-2k",
                Map.of("cluster.lite-member", "true", "http.max-body-bytes", "2k")),
            RouterOptions.defaults())) {
      HttpResponse<String> big =
          postTo(small.httpUrl(), "/v1/completions", "{\"prompt\": \"" + "z".repeat(3000) + "\"}");
      assertError(
          big, 413, "invalid_request_error", "larger than this server's limit of 2048 bytes");
      assertEquals("request_too_large", json(big).get("error").get("code").asText());
      // announced with "Expect: 100-continue" (as curl does for bodies over 1 MiB): the same 413
      // and message at once, without the body being sent (a raw socket: JDK 17's HttpClient
      // waits forever for a 100 when the server answers with a final status instead)
      URI base = URI.create(small.httpUrl());
      try (Socket socket = new Socket(base.getHost(), base.getPort())) {
        socket.setSoTimeout(30_000);
        String head =
            "POST /v1/completions HTTP/1.1\r\nHost: "
                + base.getAuthority()
                + "\r\nContent-Type: application/json\r\nContent-Length: 3000\r\n"
                + "Expect: 100-continue\r\n\r\n";
        socket.getOutputStream().write(head.getBytes(StandardCharsets.US_ASCII));
        socket.getOutputStream().flush();
        BufferedReader in =
            new BufferedReader(
                new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
        assertEquals("HTTP/1.1 413 Request Entity Too Large", in.readLine());
        int length = -1;
        for (String line = in.readLine(); !line.isEmpty(); line = in.readLine()) {
          if (line.toLowerCase(Locale.ROOT).startsWith("content-length:")) {
            length = Integer.parseInt(line.substring(15).trim());
          }
        }
        char[] answer = new char[length];
        int read = 0;
        while (read < length) {
          int n = in.read(answer, read, length - read);
          assertTrue(n > 0, "the 413's body ended early: " + new String(answer, 0, read));
          read += n;
        }
        JsonNode err = JSON.readTree(new String(answer)).get("error");
        assertEquals("request_too_large", err.get("code").asText(), new String(answer));
        assertTrue(
            err.get("message").asText().contains("larger than this server's limit of 2048 bytes"),
            new String(answer));
      }
      HttpResponse<String> ok =
          postTo(small.httpUrl(), "/v1/completions", "{\"prompt\": \"hi\", \"max_tokens\": 2}");
      assertEquals(200, ok.statusCode(), ok.body());
    }
  }

  @Test
  void aDeadlineThatPassesGives504() throws Exception {
    HttpResponse<String> r =
        post(
            "/v1/completions",
            "{\"prompt\": \"a long answer please\", \"max_tokens\": 1000, \"ignore_eos\": true}",
            "X-Request-Timeout-Ms",
            "300");
    assertError(r, 504, "timeout_error", "");
  }

  @Test
  void noActivePrefillNodeGives503WithRetryAfter() throws Exception {
    NodeRegistry registry = new NodeRegistry(cluster.decode.get(0).member().hazelcast());
    List<NodeInfo> drained = new ArrayList<>();
    try {
      for (WorkerNode p : cluster.prefill) {
        NodeInfo n = registry.get(p.id()).orElseThrow();
        drained.add(
            registry
                .compareAndSet(p.id(), n.epoch(), NodeState.ACTIVE, null, NodeState.DRAINING)
                .node());
      }
      InJvmCluster.await(
          Duration.ofSeconds(30),
          () -> cluster.router.directory().active(NodeRole.PREFILL).isEmpty(),
          "router to see no ACTIVE prefill node");
      HttpResponse<String> r = post("/v1/chat/completions", chatBody("hi", 4, false, ""));
      assertError(r, 503, "service_unavailable_error", "no ACTIVE prefill node");
      assertTrue(r.headers().firstValue("Retry-After").isPresent(), r.headers().toString());
    } finally {
      for (NodeInfo n : drained) {
        registry.compareAndSet(n.id(), n.epoch(), NodeState.DRAINING, null, NodeState.ACTIVE);
      }
      registry.close();
    }
    cluster.awaitRouterSees(1, 1);
    assertEquals(200, post("/v1/chat/completions", chatBody("back?", 3, false, "")).statusCode());
  }

  @Test
  void aFullRouterQueueGives429WithRetryAfter() throws Exception {
    try (RouterNode small =
        RouterNode.start(
            cluster.config("router", "router-small", Map.of("cluster.lite-member", "true")),
            new RouterOptions(1, 0, 2))) {
      InJvmCluster.await(
          Duration.ofSeconds(20),
          () ->
              small.directory().active(NodeRole.DECODE).size() == 1
                  && small.directory().active(NodeRole.PREFILL).size() == 1,
          "the second router to see the cluster");
      // the first request streams, so it surely holds the only slot while the second arrives
      HttpResponse<InputStream> first =
          http.send(
              HttpRequest.newBuilder(URI.create(small.httpUrl() + "/v1/completions"))
                  .POST(
                      HttpRequest.BodyPublishers.ofString(
                          "{\"prompt\": \"hold the only slot\", \"max_tokens\": 900, \"ignore_eos\": true, \"stream\": true}"))
                  .build(),
              HttpResponse.BodyHandlers.ofInputStream());
      assertEquals(200, first.statusCode());
      try (InputStream in = first.body()) {
        BufferedReader lines =
            new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
        assertTrue(lines.readLine().startsWith("data: "), "the first request streams");
        HttpResponse<String> r =
            postTo(
                small.httpUrl(), "/v1/completions", "{\"prompt\": \"me too\", \"max_tokens\": 4}");
        assertError(r, 429, "rate_limit_error", "router queue is full");
        assertEquals("1", r.headers().firstValue("Retry-After").orElse(""), r.headers().toString());
        assertEquals("queue_full", json(r).get("error").get("code").asText());
      }
      // closing the stream cancelled the first request: the slot is free again
      InJvmCluster.await(
          Duration.ofSeconds(10),
          () -> small.router().inFlight() == 0,
          "the disconnect to free the slot");
      HttpResponse<String> again =
          postTo(small.httpUrl(), "/v1/completions", "{\"prompt\": \"me too\", \"max_tokens\": 4}");
      assertEquals(200, again.statusCode(), again.body());
    }
  }

  @Test
  void aClientThatDisconnectsMidStreamCancelsTheRequestAndFreesItsKv() throws Exception {
    HttpRequest req =
        HttpRequest.newBuilder(URI.create(cluster.router.httpUrl() + "/v1/chat/completions"))
            .POST(
                HttpRequest.BodyPublishers.ofString(
                    chatBody("talk for a long time", 900, true, "")))
            .build();
    long tokensBefore = cluster.decode.get(0).decode().stats().tokens();
    HttpResponse<InputStream> r = http.send(req, HttpResponse.BodyHandlers.ofInputStream());
    assertEquals(200, r.statusCode());
    InputStream in = r.body();
    BufferedReader lines = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
    int events = 0;
    while (events < 3) {
      String line = lines.readLine();
      assertNotNull(line, "stream ended early");
      if (line.startsWith("data: ")) {
        events++;
      }
    }
    assertTrue(heldBlocks() > 0, "the streaming request should hold KV blocks");
    assertEquals(1, cluster.router.router().inFlight());
    in.close();
    InJvmCluster.await(
        Duration.ofSeconds(10),
        () -> heldBlocks() == 0 && cluster.router.router().inFlight() == 0,
        "the disconnect to cancel the request and free its KV");
    long decoded = cluster.decode.get(0).decode().stats().tokens() - tokensBefore;
    assertTrue(
        decoded < 500,
        "the request should have stopped early, not run to its 900 tokens; decoded " + decoded);
  }

  @Test
  void aClientThatDisconnectsBeforeAWholeAnswerCancelsTheRequest() throws Exception {
    long tokensBefore = cluster.decode.get(0).decode().stats().tokens();
    URI base = URI.create(cluster.router.httpUrl());
    byte[] body =
        chatBody("a long answer, not streamed", 900, false, "").getBytes(StandardCharsets.UTF_8);
    try (Socket socket = new Socket(base.getHost(), base.getPort())) {
      String head =
          "POST /v1/chat/completions HTTP/1.1\r\nHost: "
              + base.getAuthority()
              + "\r\nContent-Type: application/json\r\n"
              + "Content-Length: "
              + body.length
              + "\r\n\r\n";
      socket.getOutputStream().write(head.getBytes(StandardCharsets.US_ASCII));
      socket.getOutputStream().write(body);
      socket.getOutputStream().flush();
      InJvmCluster.await(
          Duration.ofSeconds(10),
          () -> cluster.router.router().inFlight() == 1,
          "the request to be in flight");
    }
    InJvmCluster.await(
        Duration.ofSeconds(10),
        () -> heldBlocks() == 0 && cluster.router.router().inFlight() == 0,
        "the disconnect to cancel the request and free its KV");
    long decoded = cluster.decode.get(0).decode().stats().tokens() - tokensBefore;
    assertTrue(
        decoded < 500,
        "the request should have stopped early, not run to its 900 tokens; decoded " + decoded);
  }
}
