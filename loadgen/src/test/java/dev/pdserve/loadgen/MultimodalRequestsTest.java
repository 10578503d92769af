package dev.pdserve.loadgen;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.pdserve.api.v1.ChatMessage;
import dev.pdserve.api.v1.Completion;
import dev.pdserve.api.v1.ContentPart;
import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.api.v1.ListModelsRequest;
import dev.pdserve.api.v1.ListModelsResponse;
import dev.pdserve.api.v1.ModelCard;
import dev.pdserve.api.v1.TokenDelta;
import dev.pdserve.api.v1.Usage;
import dev.pdserve.loadgen.dataset.BenchRequest;
import dev.pdserve.loadgen.dataset.Dataset;
import dev.pdserve.loadgen.dataset.DatasetConfig;
import dev.pdserve.loadgen.dataset.Datasets;
import dev.pdserve.loadgen.dataset.PromptForm;
import dev.pdserve.loadgen.dataset.TokenSpace;
import dev.pdserve.loadgen.report.SummaryRows;
import io.grpc.Server;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A {@code random-mm} run sends each request's images in the shape its API takes — gRPC: one user
 * message of {@code Image.data} parts then the text; OpenAI HTTP: the official client's {@code
 * image_url} parts with {@code data:image/png;base64,} URLs, then the text — against real servers
 * on loopback that keep what they received, and the summary says how many images of what size.
 */
class MultimodalRequestsTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final long SEED = 3;
  private final Map<Long, GenerateRequest> grpcRequests = new ConcurrentHashMap<>();
  private final Map<Long, JsonNode> httpBodies = new ConcurrentHashMap<>();
  private Server grpc;
  private HttpServer http;

  @AfterEach
  void stop() throws InterruptedException {
    if (grpc != null) {
      grpc.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
    if (http != null) {
      http.stop(0);
      ((ExecutorService) http.getExecutor()).shutdownNow();
    }
  }

  private static BenchConfig config(String router, String baseUrl, String endpoint) {
    return new BenchConfig(
        router,
        baseUrl,
        endpoint,
        null,
        null,
        RandomMultimodalDatasetTest.config(2, 60, 44),
        Double.POSITIVE_INFINITY,
        1,
        4,
        0,
        6,
        0,
        1,
        SEED,
        1,
        List.of(),
        Map.of(),
        0,
        true,
        30,
        0);
  }

  /** The request the dataset made for the id the bench gave it ({@code <run>-<index>}). */
  private static long index(String requestId) {
    return Long.parseLong(requestId.substring(requestId.lastIndexOf('-') + 1))
            * (requestId.contains("warmup") ? -1 : 1)
        - (requestId.contains("warmup") ? 1 : 0);
  }

  /** The stream the bench built: token ids from the vocabulary the server reported. */
  private static Dataset dataset(int vocab) {
    DatasetConfig cfg = RandomMultimodalDatasetTest.config(2, 60, 44);
    return Datasets.open(cfg, TokenSpace.forVocab(vocab), PromptForm.TOKEN_IDS, SEED, 0);
  }

  private static void assertPng(byte[] sent, byte[] expected, String what) throws IOException {
    assertArrayEquals(expected, sent, what + ": the dataset's image bytes");
    BufferedImage img = ImageIO.read(new ByteArrayInputStream(sent));
    assertEquals(60, img.getWidth(), what + " width");
    assertEquals(44, img.getHeight(), what + " height");
  }

  @Test
  void grpcRequestsCarryTheImagesAsImageDataPartsBeforeTheText() throws Exception {
    startGrpc();
    Benchmark.Outcome o =
        new Benchmark(
                config("127.0.0.1:" + grpc.getPort(), null, "completions"),
                new PrintWriter(new StringWriter()),
                false)
            .run();
    assertEquals(6, o.summary().completed, o.summary().failures.toString());
    assertEquals(7, grpcRequests.size(), "6 measured and 1 warm-up request");
    Dataset ds = dataset(288);
    for (Map.Entry<Long, GenerateRequest> e : grpcRequests.entrySet()) {
      BenchRequest want = ds.get(e.getKey());
      GenerateRequest got = e.getValue();
      assertEquals(1, got.getMessages().getMessagesCount(), "one user message: " + e.getKey());
      ChatMessage m = got.getMessages().getMessages(0);
      assertEquals("user", m.getRole());
      assertEquals(3, m.getPartsCount(), "two images and the text of request " + e.getKey());
      for (int k = 0; k < 2; k++) {
        ContentPart p = m.getParts(k);
        assertTrue(p.hasImage(), "part " + k + " is an image");
        assertEquals("image/png", p.getImage().getMediaType());
        assertPng(
            p.getImage().getData().toByteArray(),
            want.images().get(k).data(),
            "request " + e.getKey() + " image " + k);
      }
      assertEquals(want.promptText(), m.getParts(2).getText(), "the text comes last");
      assertEquals(0, got.getImagesCount(), "chat input carries its images in its parts");
      assertEquals(want.outputTokens(), got.getParams().getMaxTokens());
    }
    StringWriter table = new StringWriter();
    SummaryRows.print(
        SummaryRows.of(o.summary(), List.of(), o.cluster()), new PrintWriter(table, true));
    assertTrue(
        table.toString().contains("Images per request:                      2"), table.toString());
    assertTrue(
        table.toString().contains("Image size (px):                         60x44"),
        table.toString());
    assertEquals(2, o.summary().meta.get("images_per_request"));
  }

  @Test
  void httpChatRequestsCarryTheImagesAsDataUrlsInImageUrlPartsBeforeTheText() throws Exception {
    startHttp();
    String base = "http://127.0.0.1:" + http.getAddress().getPort();
    Benchmark.Outcome o =
        new Benchmark(config(null, base, "chat"), new PrintWriter(new StringWriter()), false).run();
    assertEquals(6, o.summary().completed, o.summary().failures.toString());
    assertEquals(7, httpBodies.size());
    Dataset ds = dataset(32000); // /v1/models reports no vocabulary: the bench's default
    for (Map.Entry<Long, JsonNode> e : httpBodies.entrySet()) {
      BenchRequest want = ds.get(e.getKey());
      JsonNode content = e.getValue().get("messages").get(0).get("content");
      assertEquals("user", e.getValue().get("messages").get(0).get("role").asText());
      assertTrue(content.isArray() && content.size() == 3, "3 parts: " + content);
      for (int k = 0; k < 2; k++) {
        JsonNode part = content.get(k);
        assertEquals(2, part.size(), "only type and image_url: " + part);
        assertEquals("image_url", part.get("type").asText());
        assertEquals(1, part.get("image_url").size(), "image_url holds only its url: " + part);
        String url = part.get("image_url").get("url").asText();
        String prefix = "data:image/png;base64,";
        assertTrue(url.startsWith(prefix), url.substring(0, Math.min(40, url.length())));
        assertPng(
            Base64.getDecoder().decode(url.substring(prefix.length())),
            want.images().get(k).data(),
            "request " + e.getKey() + " image " + k);
      }
      assertEquals("text", content.get(2).get("type").asText());
      assertEquals(want.promptText(), content.get(2).get("text").asText());
    }
  }

  @Test
  void randomMmOverHttpCompletionsIsRefusedNamingTheEndpointFlag() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> config(null, "http://127.0.0.1:1", "completions").validate());
    assertTrue(e.getMessage().contains("needs --endpoint chat"), e.getMessage());
  }

  private void startGrpc() throws IOException {
    grpc =
        NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
            .addService(
                new GenerationGrpc.GenerationImplBase() {
                  @Override
                  public void listModels(
                      ListModelsRequest req, StreamObserver<ListModelsResponse> out) {
                    out.onNext(
                        ListModelsResponse.newBuilder()
                            .addModels(
                                ModelCard.newBuilder()
                                    .setId("tiny-test")
                                    .setMaxContext(1024)
                                    .setVocabSize(288))
                            .build());
                    out.onCompleted();
                  }

                  @Override
                  public void generate(GenerateRequest req, StreamObserver<GenerateResponse> out) {
                    grpcRequests.put(index(req.getRequestId()), req);
                    int n = req.getParams().getMaxTokens();
                    for (int i = 0; i < n; i++) {
                      out.onNext(
                          GenerateResponse.newBuilder()
                              .setDelta(TokenDelta.newBuilder().addTokenIds(65).setText("A"))
                              .build());
                    }
                    out.onNext(
                        GenerateResponse.newBuilder()
                            .setCompletion(
                                Completion.newBuilder()
                                    .setFinishReason("length")
                                    .setUsage(
                                        Usage.newBuilder()
                                            .setPromptTokens(100)
                                            .setCompletionTokens(n)))
                            .build());
                    out.onCompleted();
                  }
                })
            .build()
            .start();
  }

  private void startHttp() throws IOException {
    http = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    http.setExecutor(Executors.newFixedThreadPool(4));
    http.createContext("/v1/models", ex -> reply(ex, "{\"data\":[{\"id\":\"tiny-test\"}]}"));
    http.createContext(
        "/v1/chat/completions",
        ex -> {
          JsonNode body = JSON.readTree(ex.getRequestBody());
          httpBodies.put(index(ex.getRequestHeaders().getFirst("X-Request-Id")), body);
          ex.getResponseHeaders().add("Content-Type", "text/event-stream");
          ex.sendResponseHeaders(200, 0);
          try (OutputStream o = ex.getResponseBody()) {
            int n = body.get("max_tokens").asInt();
            for (int i = 0; i < n; i++) {
              String last = i == n - 1 ? "\"length\"" : "null";
              o.write(
                  ("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t\"},\"finish_reason\":"
                          + last
                          + "}]}\n\n")
                      .getBytes(StandardCharsets.UTF_8));
            }
            o.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
          }
        });
    http.start();
  }

  private static void reply(HttpExchange ex, String body) throws IOException {
    byte[] b = body.getBytes(StandardCharsets.UTF_8);
    ex.getResponseHeaders().add("Content-Type", "application/json");
    ex.sendResponseHeaders(200, b.length);
    try (OutputStream o = ex.getResponseBody()) {
      o.write(b);
    }
  }
}
