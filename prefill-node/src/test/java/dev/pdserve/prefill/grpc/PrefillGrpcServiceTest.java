package dev.pdserve.prefill.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.pdserve.core.grpc.ProtoConversions;
import dev.pdserve.core.kv.InMemoryKvTransfer;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvEndpoint;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.internal.v1.PrefillRequest;
import dev.pdserve.internal.v1.PrefillResponse;
import dev.pdserve.internal.v1.PrefillServiceGrpc;
import dev.pdserve.internal.v1.PromptImage;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.engine.RenderedPrompt;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.tokenizer.ChatTemplate;
import dev.pdserve.model.vision.EncodedImage;
import dev.pdserve.model.vision.EncoderCache;
import dev.pdserve.model.vision.ImageDigest;
import dev.pdserve.model.vision.TestImages;
import dev.pdserve.prefill.PrefillEngine;
import dev.pdserve.prefill.PrefillEngineSettings;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The prefill adapter's image fields over in-process gRPC: a prompt's images arrive and are used
 * (the first token is the reference engine's), and an image the node cannot use fails the call with
 * INVALID_ARGUMENT naming it.
 */
class PrefillGrpcServiceTest {
  static final KvEndpoint DECODE = new KvEndpoint("decode-0", 7000);
  static final long MAX_IMAGE_BYTES = 64 << 10;
  static final EncodedImage SQUARE = TestImages.png(56, 56, 1);

  static LoadedModel model;
  static ReferenceEngine reference;

  RootAllocator allocator;
  KvBlockPool prefillPool;
  KvBlockPool decodePool;
  InMemoryKvTransfer decode;
  PrefillEngine engine;
  Server server;
  ManagedChannel channel;
  PrefillServiceGrpc.PrefillServiceBlockingStub stub;

  @BeforeAll
  static void loadModel() {
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    reference = new ReferenceEngine(model, OrtRuntime.shared());
  }

  @AfterAll
  static void closeModel() {
    reference.close();
    model.close();
  }

  @BeforeEach
  void start() throws Exception {
    allocator = new RootAllocator();
    KvLayout layout = KvLayout.of(model.config());
    prefillPool = new KvBlockPool(allocator, "prefill", layout, 16 * layout.blockBytes());
    decodePool = new KvBlockPool(allocator, "decode", layout, 16 * layout.blockBytes());
    decode = new InMemoryKvTransfer(decodePool, DECODE);
    engine =
        new PrefillEngine(
            PrefillEngineSettings.builder(
                    reference.runner(), reference.experts(), prefillPool, decode, model.tokenizer())
                .vision(reference.visionEncoder().orElseThrow(), new EncoderCache(1 << 20))
                .build());
    String name = InProcessServerBuilder.generateName();
    server =
        InProcessServerBuilder.forName(name)
            .addService(new PrefillGrpcService(engine, MAX_IMAGE_BYTES))
            .build()
            .start();
    channel = InProcessChannelBuilder.forName(name).build();
    stub = PrefillServiceGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS);
  }

  @AfterEach
  void stop() throws Exception {
    channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    engine.close();
    assertEquals(prefillPool.totalBlocks(), prefillPool.freeBlocks(), "prefill KV is free");
    assertEquals(decodePool.totalBlocks(), decodePool.freeBlocks(), "decode KV is free");
    prefillPool.close();
    decodePool.close();
    allocator.close();
  }

  static final Prompt SOURCE = new Prompt.Text("see " + ChatTemplate.IMAGE_SLOT, List.of(SQUARE));

  /** The prompt as a router sends it, its one image given by {@code image}. */
  static PrefillRequest.Builder request(String requestId, PromptImage image) {
    RenderedPrompt r = reference.renderer().renderWithImages(SOURCE, false);
    PrefillRequest.Builder b =
        PrefillRequest.newBuilder()
            .setRequestId(requestId)
            .setParams(ProtoConversions.sampling(SamplingParams.greedy(1)))
            .setSeed(7)
            .setTransferId("t-" + requestId)
            .setFlightHost(DECODE.host())
            .setFlightPort(DECODE.port())
            .addImages(image);
    for (int id : r.ids()) {
      b.addPromptTokenIds(id);
    }
    return b;
  }

  static PromptImage.Builder square() {
    RenderedPrompt r = reference.renderer().renderWithImages(SOURCE, false);
    return PromptImage.newBuilder()
        .setData(ByteString.copyFrom(SQUARE.bytes()))
        .setMediaType("image/png")
        .setDigest(
            ByteString.copyFrom(
                ImageDigest.of(SQUARE, model.config().vision().orElseThrow()).bytes()))
        .setPlaceholderStart(r.images().get(0).start())
        .setGridH(r.images().get(0).gridH())
        .setGridW(r.images().get(0).gridW());
  }

  /** The status the call failed with; nothing of it stays on the node (checked after each test). */
  Status refusal(PrefillRequest req) {
    return assertThrows(StatusRuntimeException.class, () -> stub.prefill(req)).getStatus();
  }

  @Test
  void aPromptsImagesArriveAndTheFirstTokenIsTheReferenceEngines() {
    PrefillRequest req = request("ok", square().build()).build();
    int[] blocks = decodePool.allocate(decodePool.layout().blocksFor(req.getPromptTokenIdsCount()));
    decode.expect("t-ok", blocks, req.getPromptTokenIdsCount());
    PrefillResponse resp = stub.prefill(req);
    int expected =
        reference.generate(new GenerateRequest("ref", SOURCE, SamplingParams.greedy(1), false))
            .tokenIds()[0];
    assertEquals(expected, resp.getFirstToken(), "first token differs from the reference's");
    decodePool.free(blocks);
  }

  @Test
  void anImageTheNodeCannotDecodeIsInvalidArgumentNamingIt() {
    PromptImage broken =
        square().setData(ByteString.copyFromUtf8("GIF89a...")).clearDigest().build();
    Status s = refusal(request("gif", broken).build());
    assertEquals(Status.Code.INVALID_ARGUMENT, s.getCode(), s.toString());
    assertEquals(
        "request gif: images[0]: unsupported image format GIF; send PNG or JPEG",
        s.getDescription());
  }

  @Test
  void anImageOverTheInboundBoundIsInvalidArgumentNamingIt() {
    PromptImage big = square().setData(ByteString.copyFrom(new byte[70_000])).build();
    Status s = refusal(request("big", big).build());
    assertEquals(Status.Code.INVALID_ARGUMENT, s.getCode(), s.toString());
    assertEquals(
        "images[0]: image is 70000 bytes; this node takes images of at most 65536 bytes"
            + " (pdserve.grpc.max-inbound-bytes)",
        s.getDescription());
  }

  @Test
  void aDigestThatIsNotTheImagesIsRefused() {
    Status wrongLength =
        refusal(
            request("short", square().setDigest(ByteString.copyFrom(new byte[5])).build()).build());
    assertEquals(Status.Code.INVALID_ARGUMENT, wrongLength.getCode());
    assertEquals(
        "images[0]: digest must be 32 bytes (SHA-256), got 5", wrongLength.getDescription());
    Status other =
        refusal(
            request("other", square().setDigest(ByteString.copyFrom(new byte[32])).build())
                .build());
    assertEquals(Status.Code.INVALID_ARGUMENT, other.getCode());
    assertTrue(
        other.getDescription().startsWith("request other: images[0]: digest 0000"),
        other.getDescription());
  }

  @Test
  void placeholdersNotWhereTheImageSaysAreRefused() {
    PromptImage shifted = square().setPlaceholderStart(square().getPlaceholderStart() + 1).build();
    Status s = refusal(request("shifted", shifted).build());
    assertEquals(Status.Code.INVALID_ARGUMENT, s.getCode());
    assertTrue(s.getDescription().startsWith("request shifted: images[0]: "), s.getDescription());
  }
}
