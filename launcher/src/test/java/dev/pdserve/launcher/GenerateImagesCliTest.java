package dev.pdserve.launcher;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.pdserve.api.v1.Completion;
import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.api.v1.TokenDelta;
import dev.pdserve.api.v1.Usage;
import dev.pdserve.launcher.CliTest.Run;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.tokenizer.ChatMessage;
import dev.pdserve.model.tokenizer.ContentPart;
import dev.pdserve.model.vision.EncodedImage;
import dev.pdserve.model.vision.TestImages;
import io.grpc.Server;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code pdserve generate --image}: with {@code --local} the tokens are the reference engine's for
 * the same images (the vision tower of the preset), with {@code --router} the request carries the
 * files as {@code Image.data} with their media types, placed where the chat template places them; a
 * bad path is a usage error and a broken image an INVALID_ARGUMENT, each naming the file.
 */
class GenerateImagesCliTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  @TempDir Path tmp;
  private Server server;
  private final List<GenerateRequest> received = new ArrayList<>();

  @AfterEach
  void stopServer() throws InterruptedException {
    if (server != null) {
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  private Path write(String name, byte[] bytes) throws IOException {
    Path p = tmp.resolve(name);
    Files.write(p, bytes);
    return p;
  }

  private static int[] tokenIds(Run r) throws IOException {
    JsonNode ids = JSON.readTree(r.out()).get("token_ids");
    int[] out = new int[ids.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = ids.get(i).asInt();
    }
    return out;
  }

  private static int[] reference(ContentPart... parts) {
    try (LoadedModel m = LoadedModel.load(ModelSpec.preset("tiny"));
        ReferenceEngine engine = new ReferenceEngine(m, OrtRuntime.shared())) {
      return engine
          .generate(
              new dev.pdserve.model.engine.GenerateRequest(
                  "ref",
                  new Prompt.Messages(List.of(ChatMessage.userParts(parts))),
                  SamplingParams.greedy(8),
                  true))
          .tokenIds();
    }
  }

  @Test
  void generateLocalWithAnImageGivesTheReferenceEnginesTokensForThatImage() throws Exception {
    EncodedImage img = TestImages.png(64, 40, 7);
    Path file = write("cat.png", img.bytes());
    Run r =
        CliTest.run(
            "generate",
            "--local",
            "--image",
            file.toString(),
            "--prompt",
            "What is this?",
            "--max-tokens",
            "8",
            "--json");
    assertEquals(0, r.code(), r.err());
    assertArrayEquals(
        reference(ContentPart.image(img), ContentPart.text("What is this?")),
        tokenIds(r),
        "generate --local --image differs from the reference engine given the image before the text");
    Run textOnly =
        CliTest.run(
            "generate", "--local", "--prompt", "What is this?", "--max-tokens", "8", "--json");
    assertTrue(
        JSON.readTree(r.out()).get("usage").get("prompt_tokens").asInt()
            > JSON.readTree(textOnly.out()).get("usage").get("prompt_tokens").asInt(),
        "the image's placeholders are part of the prompt");
  }

  @Test
  void twoImagesGoInTheOrderGiven() throws Exception {
    EncodedImage a = TestImages.png(56, 56, 1);
    EncodedImage b = TestImages.png(90, 30, 2);
    Path fa = write("a.png", a.bytes());
    Path fb = write("b.png", b.bytes());
    Run r =
        CliTest.run(
            "generate",
            "--local",
            "--image",
            fa.toString(),
            "--image",
            fb.toString(),
            "--prompt",
            "compare",
            "--max-tokens",
            "8",
            "--json");
    assertEquals(0, r.code(), r.err());
    assertArrayEquals(
        reference(ContentPart.image(a), ContentPart.image(b), ContentPart.text("compare")),
        tokenIds(r),
        "two --image files, in order, then the text");
  }

  @Test
  void aMissingImageFileIsAUsageErrorNamingTheFlagAndPath() {
    Path missing = tmp.resolve("nope.png");
    for (String target : new String[] {"--local", "--router=127.0.0.1:1"}) {
      Run r = CliTest.run("generate", target, "--image", missing.toString(), "--prompt", "x");
      assertEquals(CliErrors.USAGE, r.code(), r.err());
      assertTrue(
          r.err().contains("--image " + missing + ": no such file"),
          "stderr should name --image and the path: " + r.err());
    }
    Run dir = CliTest.run("generate", "--local", "--image", tmp.toString(), "--prompt", "x");
    assertEquals(CliErrors.USAGE, dir.code(), dir.err());
    assertTrue(dir.err().contains("--image " + tmp + ": is a directory"), dir.err());
  }

  @Test
  void aBrokenImageWithLocalIsAnInvalidArgumentNamingTheFile() throws Exception {
    Path notImage = write("notes.png", "just text".getBytes(StandardCharsets.UTF_8));
    Run r =
        CliTest.run("generate", "--local", "--image", notImage.toString(), "--prompt", "describe");
    assertEquals(CliErrors.FAILED, r.code(), r.err());
    assertTrue(
        r.err().startsWith("INVALID_ARGUMENT: messages[0].content[0]: not a PNG or JPEG image")
            && r.err().contains("(--image " + notImage + ")"),
        "stderr: " + r.err());
    byte[] png = TestImages.png(64, 64, 3).bytes();
    Path cut = write("cut.png", Arrays.copyOf(png, png.length / 2));
    Run truncated =
        CliTest.run(
            "generate",
            "--local",
            "--raw",
            "--image",
            cut.toString(),
            "--prompt",
            "<|IMAGE_START|><|IMAGE_END|>x");
    assertEquals(CliErrors.FAILED, truncated.code(), truncated.err());
    assertTrue(
        truncated.err().startsWith("INVALID_ARGUMENT: images[0]: PNG image is truncated")
            && truncated.err().contains("(--image " + cut + ")"),
        "stderr: " + truncated.err());
  }

  @Test
  void aRawPromptNeedsOneImageSlotPerImageLocally() throws Exception {
    Path file = write("a.png", TestImages.png(56, 56, 1).bytes());
    Run r =
        CliTest.run("generate", "--local", "--raw", "--image", file.toString(), "--prompt", "x");
    assertEquals(CliErrors.USAGE, r.code(), r.err());
    assertTrue(
        r.err().contains("--prompt: the prompt has 0 image slots (<|IMAGE_START|><|IMAGE_END|>)"),
        r.err());
  }

  @Test
  void withRouterTheImagesTravelAsImageDataBeforeTheTextOrAsRequestImages() throws Exception {
    startRouter();
    byte[] png = TestImages.png(32, 32, 5).bytes();
    byte[] jpeg = jpeg(48, 32);
    Path fp = write("a.png", png);
    Path fj = write("b.jpg", jpeg);
    String router = "--router=127.0.0.1:" + server.getPort();

    Run chat =
        CliTest.run(
            "generate",
            router,
            "--image",
            fp.toString(),
            "--image",
            fj.toString(),
            "--prompt",
            "hi");
    assertEquals(0, chat.code(), chat.err());
    GenerateRequest c = received.get(0);
    assertEquals(1, c.getMessages().getMessagesCount(), c.toString());
    var parts = c.getMessages().getMessages(0).getPartsList();
    assertEquals("user", c.getMessages().getMessages(0).getRole());
    assertEquals(3, parts.size(), "two images then the text: " + parts);
    assertArrayEquals(png, parts.get(0).getImage().getData().toByteArray());
    assertEquals("image/png", parts.get(0).getImage().getMediaType());
    assertArrayEquals(jpeg, parts.get(1).getImage().getData().toByteArray());
    assertEquals("image/jpeg", parts.get(1).getImage().getMediaType());
    assertEquals("hi", parts.get(2).getText());
    assertEquals("", c.getMessages().getMessages(0).getContent(), "parts are the content");
    assertEquals(0, c.getImagesCount(), "chat input carries its images in its parts");

    Run ids = CliTest.run("generate", router, "--image", fp.toString(), "--prompt-ids", "7,8,40");
    assertEquals(0, ids.code(), ids.err());
    GenerateRequest t = received.get(1);
    assertEquals(List.of(7, 8, 40), t.getPromptTokenIds().getIdsList());
    assertEquals(1, t.getImagesCount());
    assertArrayEquals(png, t.getImages(0).getData().toByteArray());
    assertEquals("image/png", t.getImages(0).getMediaType());

    Run raw =
        CliTest.run("generate", router, "--raw", "--image", fj.toString(), "--prompt", "look");
    assertEquals(0, raw.code(), raw.err());
    GenerateRequest p = received.get(2);
    assertEquals("look", p.getPrompt());
    assertEquals("image/jpeg", p.getImages(0).getMediaType());

    Run noImages = CliTest.run("generate", router, "--prompt", "plain");
    assertEquals(0, noImages.code(), noImages.err());
    GenerateRequest n = received.get(3);
    assertEquals("plain", n.getMessages().getMessages(0).getContent());
    assertEquals(0, n.getMessages().getMessages(0).getPartsCount(), "text-only stays content");
  }

  /** A Generation service on port 0 that keeps each request and answers one token. */
  private void startRouter() throws IOException {
    server =
        NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
            .maxInboundMessageSize(16 << 20)
            .addService(
                new GenerationGrpc.GenerationImplBase() {
                  @Override
                  public void generate(GenerateRequest req, StreamObserver<GenerateResponse> out) {
                    synchronized (received) {
                      received.add(req);
                    }
                    out.onNext(
                        GenerateResponse.newBuilder()
                            .setDelta(TokenDelta.newBuilder().addTokenIds(65).setText("A"))
                            .build());
                    out.onNext(
                        GenerateResponse.newBuilder()
                            .setCompletion(
                                Completion.newBuilder()
                                    .setFinishReason("length")
                                    .setUsage(Usage.newBuilder().setPromptTokens(3)))
                            .build());
                    out.onCompleted();
                  }
                })
            .build()
            .start();
  }

  private static byte[] jpeg(int w, int h) throws IOException {
    BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        img.setRGB(x, y, (x * 5) << 16 | (y * 7) << 8 | 90);
      }
    }
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ImageIO.write(img, "jpeg", out);
    return out.toByteArray();
  }
}
