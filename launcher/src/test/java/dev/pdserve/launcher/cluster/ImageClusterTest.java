package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.pdserve.api.v1.ChatMessage;
import dev.pdserve.api.v1.ChatMessages;
import dev.pdserve.api.v1.ContentPart;
import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.Image;
import dev.pdserve.api.v1.SamplingParams;
import dev.pdserve.core.metrics.MetricNames;
import dev.pdserve.internal.v1.AdminServiceGrpc;
import dev.pdserve.internal.v1.SwitchRoleRequest;
import dev.pdserve.internal.v1.SwitchRoleResponse;
import dev.pdserve.launcher.metrics.PrometheusText;
import dev.pdserve.launcher.node.WorkerNode;
import dev.pdserve.model.config.ImageTokenIds;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.vision.EncodedImage;
import dev.pdserve.model.vision.TestImages;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Images end to end through real clusters in this JVM (Hazelcast, gRPC, Flight, ORT; the {@code
 * tiny} preset's vision tower, small images): the router renders image prompts with the chat
 * template, sends the files with their digests and placeholders to the prefill node (or the decode
 * node for a short local prefill) and the position delta to the decode node; every stream equals
 * the single-process reference engine's greedy tokens. Two cluster startups: 1P/2D with experts in
 * the workers (remote and local prefill, prefix and encoder caches, refusals, a role switch that
 * migrates image sequences mid-stream) and 1P/1D/2E with remote experts.
 */
class ImageClusterTest {
  static ReferenceEngine reference;
  static LoadedModel model;
  static ImageTokenIds ids;
  static final HttpClient HTTP = HttpClient.newHttpClient();

  @BeforeAll
  static void loadReference() {
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    reference = new ReferenceEngine(model, OrtRuntime.shared());
    ids = model.config().vision().orElseThrow().tokens();
  }

  @AfterAll
  static void close() {
    reference.close();
    model.close();
  }

  static final EncodedImage CAT = TestImages.png(64, 40, 7);
  static final EncodedImage DOG = TestImages.png(64, 40, 8);
  static final EncodedImage WIDE = TestImages.png(120, 56, 9);

  /** A greedy chat request: the images, then the text, as one user message. */
  static GenerateRequest chat(String id, String text, int maxTokens, EncodedImage... images) {
    ChatMessage.Builder m = ChatMessage.newBuilder().setRole("user");
    for (EncodedImage img : images) {
      m.addParts(
          ContentPart.newBuilder()
              .setImage(
                  Image.newBuilder()
                      .setData(ByteString.copyFrom(img.bytes()))
                      .setMediaType("image/png")));
    }
    m.addParts(ContentPart.newBuilder().setText(text));
    return GenerateRequest.newBuilder()
        .setRequestId(id)
        .setMessages(ChatMessages.newBuilder().addMessages(m))
        .setParams(
            SamplingParams.newBuilder()
                .setTemperature(0)
                .setMaxTokens(maxTokens)
                .setIgnoreEos(true))
        .build();
  }

  static Prompt referencePrompt(String text, EncodedImage... images) {
    List<dev.pdserve.model.tokenizer.ContentPart> parts = new ArrayList<>();
    for (EncodedImage img : images) {
      parts.add(dev.pdserve.model.tokenizer.ContentPart.image(img));
    }
    parts.add(dev.pdserve.model.tokenizer.ContentPart.text(text));
    return new Prompt.Messages(List.of(new dev.pdserve.model.tokenizer.ChatMessage("user", parts)));
  }

  static int[] expected(String text, int maxTokens, EncodedImage... images) {
    return reference
        .generate(
            new dev.pdserve.model.engine.GenerateRequest(
                "ref",
                referencePrompt(text, images),
                dev.pdserve.model.sampling.SamplingParams.builder()
                    .temperature(0)
                    .maxTokens(maxTokens)
                    .ignoreEos(true)
                    .build(),
                true))
        .tokenIds();
  }

  /** The prompt's ids as the reference renders them. */
  static int[] rendered(String text, EncodedImage... images) {
    return reference.renderer().render(referencePrompt(text, images), true);
  }

  /**
   * Prompt tokens of the image kind: start, end and placeholders (what the vision experts take).
   */
  static long imageTokens(int[] prompt) {
    return Arrays.stream(prompt)
        .filter(t -> t == ids.start() || t == ids.end() || t == ids.placeholder())
        .count();
  }

  /** Index of the prompt's first placeholder. */
  static int firstPlaceholder(int[] prompt) {
    for (int i = 0; i < prompt.length; i++) {
      if (prompt[i] == ids.placeholder()) {
        return i;
      }
    }
    throw new AssertionError("no image in the prompt");
  }

  static double counter(WorkerNode w, String name) throws Exception {
    HttpResponse<String> r =
        HTTP.send(
            HttpRequest.newBuilder(URI.create(w.metrics().url())).GET().build(),
            HttpResponse.BodyHandlers.ofString());
    return PrometheusText.parse(r.body()).sum(name + "_total");
  }

  static void assertExact(InJvmCluster.Result r, int[] expected, String what) {
    assertNotNull(r.completion(), what + ": no completion");
    assertArrayEquals(expected, r.tokenIds(), what + " differs from the reference engine");
  }

  static final String LONG =
      "Describe the picture in detail, please, and say what colours you see in it. ";

  @Test
  void oneP2DLocalExpertsServeImagesExactlyThroughEveryPath() throws Exception {
    try (InJvmCluster c =
        InJvmCluster.start(
            1,
            2,
            0,
            Map.of(
                "prefill.prefix-cache", "true",
                "router.local-prefill-threshold", "40",
                "router.images.max-bytes", "64k"))) {
      WorkerNode p0 = c.prefill.get(0);

      // 1. one and two images, prefilled on the prefill node
      double visionBefore = counter(p0, MetricNames.PREFILL_VISION_TOKENS);
      InJvmCluster.Result one = c.generate(chat("one", LONG, 10, CAT));
      assertExact(one, expected(LONG, 10, CAT), "one image");
      InJvmCluster.Result two = c.generate(chat("two", LONG, 10, CAT, WIDE));
      assertExact(two, expected(LONG, 10, CAT, WIDE), "two images");
      assertEquals(
          imageTokens(rendered(LONG, CAT)) + imageTokens(rendered(LONG, CAT, WIDE)),
          counter(p0, MetricNames.PREFILL_VISION_TOKENS) - visionBefore,
          "the vision expert group took the image tokens, and only them");
      assertEquals(0, c.router.router().localPrefills());

      // 2. a short prompt with an image: the decode node prefills it itself
      double decodeVision = c.decode.stream().mapToDouble(this::decodeVisionTokens).sum();
      InJvmCluster.Result local = c.generate(chat("local", "Hi?", 10, CAT));
      assertTrue(rendered("Hi?", CAT).length <= 40);
      assertExact(local, expected("Hi?", 10, CAT), "local prefill");
      assertEquals(1, c.router.router().localPrefills());
      assertEquals(
          imageTokens(rendered("Hi?", CAT)),
          c.decode.stream().mapToDouble(this::decodeVisionTokens).sum() - decodeVision,
          "the decode node's vision tokens: the image's, and only them");

      // 3. same text, another image: other output, no KV of the first image reused
      String text = LONG + "Is it a cat?";
      InJvmCluster.Result withCat = c.generate(chat("cat-1", text, 12, CAT));
      InJvmCluster.Result withDog = c.generate(chat("dog-1", text, 12, DOG));
      assertExact(withCat, expected(text, 12, CAT), "cat");
      assertExact(withDog, expected(text, 12, DOG), "dog");
      assertFalse(
          Arrays.equals(withCat.tokenIds(), withDog.tokenIds()), "another image, another answer");
      int textBlocks = firstPlaceholder(rendered(text, DOG)) / 16 * 16;
      assertTrue(
          withDog.completion().getUsage().getCachedTokens() <= textBlocks,
          "only the text blocks before the image may come from the cache: "
              + withDog.completion().getUsage().getCachedTokens());
      // the same image again: the encoder cache answers and the KV of the image is reused
      double hits = counter(p0, MetricNames.PREFILL_VISION_ENCODER_CACHE_HITS);
      InJvmCluster.Result catAgain = c.generate(chat("cat-2", text, 12, CAT));
      assertArrayEquals(withCat.tokenIds(), catAgain.tokenIds(), "same image, same answer");
      assertTrue(
          counter(p0, MetricNames.PREFILL_VISION_ENCODER_CACHE_HITS) > hits,
          "the second time the encoder cache held the image");
      assertTrue(
          catAgain.completion().getUsage().getCachedTokens() > textBlocks,
          "the prefix cache reused blocks holding the image: "
              + catAgain.completion().getUsage().getCachedTokens());

      // 4. bad images answered with their status while another request finishes
      CompletableFuture<InJvmCluster.Result> busy =
          ClusterBehaviourTest.async(c.channel, chat("busy", LONG, 40, WIDE));
      byte[] png = CAT.bytes();
      assertRefused(
          c,
          chat("truncated", LONG, 4, new EncodedImage(Arrays.copyOf(png, png.length / 2))),
          "messages[0].content[0]");
      assertRefused(
          c,
          chatBytes("empty", new byte[0], "image/png"),
          "messages[0].content[0]: image is empty");
      assertRefused(c, chatBytes("gif", "GIF89a....".getBytes(), ""), "messages[0].content[0]");
      assertRefused(c, chatBytes("webp", png, "image/webp"), "unsupported image type 'image/webp'");
      assertRefused(
          c, chat("bomb", LONG, 4, new EncodedImage(bombPng())), "messages[0].content[0]");
      assertRefused(
          c, chatBytes("huge", new byte[70 << 10], "image/png"), "pdserve.router.images.max-bytes");
      EncodedImage[] nine = new EncodedImage[9];
      Arrays.fill(nine, CAT);
      assertRefused(c, chat("nine", LONG, 4, nine), "9 images in one prompt");
      assertExact(
          busy.get(120, TimeUnit.SECONDS), expected(LONG, 40, WIDE), "the concurrent request");

      // 5. a role switch moves image sequences mid-stream to the other decode node
      List<CompletableFuture<InJvmCluster.Result>> streams = new ArrayList<>();
      List<String> texts = new ArrayList<>();
      for (int i = 0; i < 6; i++) {
        texts.add(LONG + "Stream " + i + ".");
        streams.add(
            ClusterBehaviourTest.async(
                c.channel, chat("mig" + i, texts.get(i), 64, i % 2 == 0 ? CAT : WIDE)));
      }
      // whichever decode node the router chose (prefix-aware routing may send all six to one)
      InJvmCluster.await(
          Duration.ofSeconds(60),
          () -> c.decode.stream().anyMatch(w -> w.decode().stats().running() >= 1),
          "a decode node to decode an image sequence");
      WorkerNode d0 =
          c.decode.stream()
              .filter(w -> w.decode().stats().running() >= 1)
              .findFirst()
              .orElseThrow();
      SwitchRoleResponse switched =
          AdminServiceGrpc.newBlockingStub(c.channel)
              .withDeadlineAfter(120, TimeUnit.SECONDS)
              .switchRole(
                  SwitchRoleRequest.newBuilder()
                      .setNodeId(d0.id())
                      .setTargetRole("prefill")
                      .setExpectedEpoch(0)
                      .setReason("test")
                      .build());
      assertTrue(switched.getAccepted(), switched.getMessage());
      for (int i = 0; i < streams.size(); i++) {
        assertExact(
            streams.get(i).get(120, TimeUnit.SECONDS),
            expected(texts.get(i), 64, i % 2 == 0 ? CAT : WIDE),
            "stream " + i + " across the role switch");
      }
      assertTrue(
          switched.getMigrated() >= 1 && c.router.router().migrationsFollowed() >= 1,
          "an image sequence moved mid-stream: " + switched.getMessage());
      c.awaitNoKvHeld();
    }
  }

  double decodeVisionTokens(WorkerNode w) {
    try {
      return counter(w, MetricNames.DECODE_VISION_TOKENS);
    } catch (Exception e) {
      throw new AssertionError(e);
    }
  }

  static GenerateRequest chatBytes(String id, byte[] data, String mediaType) {
    return GenerateRequest.newBuilder()
        .setRequestId(id)
        .setMessages(
            ChatMessages.newBuilder()
                .addMessages(
                    ChatMessage.newBuilder()
                        .setRole("user")
                        .addParts(
                            ContentPart.newBuilder()
                                .setImage(
                                    Image.newBuilder()
                                        .setData(ByteString.copyFrom(data))
                                        .setMediaType(mediaType)))
                        .addParts(ContentPart.newBuilder().setText("What is it?"))))
        .setParams(SamplingParams.newBuilder().setTemperature(0).setMaxTokens(4))
        .build();
  }

  /** A PNG whose header claims 60000 × 60000 pixels: refused before any pixel is decoded. */
  static byte[] bombPng() {
    byte[] png = CAT.bytes();
    byte[] out = png.clone();
    // IHDR width and height (bytes 16..23), CRC left wrong: refused from the header either way
    int side = 60000;
    for (int i = 0; i < 2; i++) {
      out[16 + 4 * i] = (byte) (side >>> 24);
      out[17 + 4 * i] = (byte) (side >>> 16);
      out[18 + 4 * i] = (byte) (side >>> 8);
      out[19 + 4 * i] = (byte) side;
    }
    return out;
  }

  static void assertRefused(InJvmCluster c, GenerateRequest req, String message) {
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class, () -> c.generate(req), req.getRequestId());
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), e.getMessage());
    assertTrue(
        e.getStatus().getDescription().contains(message),
        req.getRequestId() + ": " + e.getStatus().getDescription());
  }

  @Test
  void remoteExpertsServeOneAndTwoImagesExactly() throws Exception {
    try (InJvmCluster c = InJvmCluster.start(1, 1, 2)) {
      assertExact(c.generate(chat("r1", LONG, 10, CAT)), expected(LONG, 10, CAT), "1P/1D/2E one");
      assertExact(
          c.generate(chat("r2", LONG, 10, WIDE, DOG)),
          expected(LONG, 10, WIDE, DOG),
          "1P/1D/2E two");
      c.awaitNoKvHeld();
    }
  }
}
