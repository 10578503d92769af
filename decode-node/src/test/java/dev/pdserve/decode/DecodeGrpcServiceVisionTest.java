package dev.pdserve.decode;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.coordination.DrainReport;
import dev.pdserve.core.grpc.ProtoConversions;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.decode.grpc.DecodeGrpcService;
import dev.pdserve.internal.v1.DecodeRequest;
import dev.pdserve.internal.v1.DecodeServiceGrpc;
import dev.pdserve.internal.v1.Migrated;
import dev.pdserve.internal.v1.ReserveRequest;
import dev.pdserve.internal.v1.ReserveResponse;
import dev.pdserve.internal.v1.TokenEvent;
import dev.pdserve.model.vision.EncodedImage;
import dev.pdserve.model.vision.PromptImage;
import dev.pdserve.model.vision.TestImages;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The decode adapter ({@link DecodeGrpcService}, in package {@code grpc}; tested here beside the
 * engine's test fixtures) over in-process gRPC: a local prefill's images and a sequence's position
 * delta come in with {@code Decode}, the delta goes out with {@code Migrated} and back in with the
 * resume, and an image the node cannot use fails the stream with INVALID_ARGUMENT naming it.
 */
class DecodeGrpcServiceVisionTest {
  static final DecodeOptions OPTIONS =
      new DecodeOptions(8, Duration.ofSeconds(5), Duration.ofSeconds(30), Duration.ofSeconds(10));
  static final int MAX_TOKENS = 20;
  static final EncodedImage WIDE = TestImages.png(224, 112, 2);

  static TinyModel model;

  RootAllocator allocator;
  GatedExperts expertsA;
  TestDecodeNode a;
  TestDecodeNode b;
  KvBlockPool prefillPool;
  final List<Server> servers = new ArrayList<>();
  final List<ManagedChannel> channels = new ArrayList<>();
  DecodeServiceGrpc.DecodeServiceBlockingStub onA;
  DecodeServiceGrpc.DecodeServiceBlockingStub onB;
  ExecutorService drainThread;

  @BeforeAll
  static void loadModel() {
    model = new TinyModel();
  }

  @AfterAll
  static void closeModel() {
    model.close();
  }

  @BeforeEach
  void start() throws Exception {
    allocator = new RootAllocator();
    expertsA = new GatedExperts(model.reference.experts());
    a = new TestDecodeNode("decode-a", allocator, model, expertsA, OPTIONS);
    b = new TestDecodeNode("decode-b", allocator, model, model.reference.experts(), OPTIONS);
    KvLayout layout = KvLayout.of(model.reference.config());
    prefillPool = new KvBlockPool(allocator, "prefill-kv", layout, 64L * layout.blockBytes());
    onA = serve(a);
    onB = serve(b);
    drainThread = Executors.newSingleThreadExecutor(new NamedThreadFactory("test-drain", true));
  }

  private DecodeServiceGrpc.DecodeServiceBlockingStub serve(TestDecodeNode node) throws Exception {
    String name = InProcessServerBuilder.generateName();
    servers.add(
        InProcessServerBuilder.forName(name)
            .addService(new DecodeGrpcService(node.engine, node::endpoint, 1 << 20))
            .build()
            .start());
    ManagedChannel channel = InProcessChannelBuilder.forName(name).build();
    channels.add(channel);
    return DecodeServiceGrpc.newBlockingStub(channel);
  }

  @AfterEach
  void stop() throws Exception {
    expertsA.open();
    drainThread.shutdownNow();
    assertTrue(drainThread.awaitTermination(30, TimeUnit.SECONDS), "the drain thread ended");
    for (ManagedChannel c : channels) {
      c.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
    for (Server s : servers) {
      s.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
    a.close(); // each checks every block of its pool is free
    b.close();
    assertEquals(prefillPool.totalBlocks(), prefillPool.freeBlocks(), "prefill KV must be free");
    prefillPool.close();
    allocator.close();
  }

  ImagePrompt prompt() {
    return model.imagePrompt("Describe " + ImagePrompt.IMAGE + ".", WIDE);
  }

  static ReserveResponse reserve(
      DecodeServiceGrpc.DecodeServiceBlockingStub stub, String id, int tokens, int max) {
    return stub.reserve(
        ReserveRequest.newBuilder()
            .setRequestId(id)
            .setPromptTokens(tokens)
            .setMaxTokens(max)
            .build());
  }

  static DecodeRequest.Builder decodeRequest(String id, String transferId, int[] ids) {
    DecodeRequest.Builder d =
        DecodeRequest.newBuilder()
            .setRequestId(id)
            .setTransferId(transferId)
            .setParams(ProtoConversions.sampling(TinyModel.greedy(MAX_TOKENS)))
            .setSeed(1);
    for (int t : ids) {
      d.addPromptTokenIds(t);
    }
    return d;
  }

  static void addImages(DecodeRequest.Builder d, List<PromptImage> images) {
    for (PromptImage img : images) {
      d.addImages(ProtoConversions.promptImage(img));
    }
  }

  /** Token ids of the events, in order. */
  static List<Integer> tokens(List<TokenEvent> events) {
    List<Integer> out = new ArrayList<>();
    for (TokenEvent e : events) {
      if (e.hasDelta()) {
        out.addAll(e.getDelta().getTokenIdsList());
      }
    }
    return out;
  }

  static int[] ints(List<Integer> l) {
    return l.stream().mapToInt(Integer::intValue).toArray();
  }

  static List<TokenEvent> drainStream(Iterator<TokenEvent> it) {
    List<TokenEvent> out = new ArrayList<>();
    it.forEachRemaining(out::add);
    return out;
  }

  @Test
  void aLocalPrefillsImagesComeInWithDecodeAndItsStreamIsTheReferences() {
    ImagePrompt p = prompt();
    ReserveResponse r = reserve(onA, "local", p.ids().length, MAX_TOKENS);
    DecodeRequest.Builder d = decodeRequest("local", r.getTransferId(), p.ids());
    d.setLocalPrefill(true).setPositionDelta(p.positionDelta());
    addImages(d, p.images());
    List<TokenEvent> events = drainStream(onA.decode(d.build()));
    assertTrue(events.get(events.size() - 1).hasCompletion(), "the stream completes");
    assertArrayEquals(
        model.referenceTokens(p, MAX_TOKENS), ints(tokens(events)), "the local prefill's stream");
  }

  @Test
  void anImageTheNodeCannotDecodeFailsTheStreamWithInvalidArgumentNamingIt() {
    ImagePrompt p = prompt();
    ReserveResponse r = reserve(onA, "bad", p.ids().length, MAX_TOKENS);
    DecodeRequest.Builder d = decodeRequest("bad", r.getTransferId(), p.ids());
    d.setLocalPrefill(true);
    addImages(d, p.images());
    d.setImages(
        0,
        d.getImages(0).toBuilder().setData(ByteString.copyFromUtf8("BM not a png")).clearDigest());
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class, () -> drainStream(onA.decode(d.build())));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), e.toString());
    assertEquals(
        "request bad: images[0]: unsupported image format BMP; send PNG or JPEG",
        e.getStatus().getDescription());
    assertEquals(0, a.engine.reservedBlocks(), "its reservation is freed");
  }

  @Test
  void theDeltaGoesOutWithMigratedAndBackInWithTheResume() {
    ImagePrompt p = prompt();
    int[] expected = model.referenceTokens(p, MAX_TOKENS);
    ReserveResponse r = reserve(onA, "mover", p.ids().length, MAX_TOKENS);
    int first =
        model.prefillAndPush(
            p,
            TinyModel.greedy(MAX_TOKENS),
            prefillPool,
            a.transfer,
            a.endpoint(),
            r.getTransferId());
    expertsA.shutAfter(2 * model.reference.config().numLayers()); // held after a few steps
    DecodeRequest.Builder d = decodeRequest("mover", r.getTransferId(), p.ids());
    d.setFirstToken(first).setPositionDelta(p.positionDelta());
    Iterator<TokenEvent> stream = onA.decode(d.build());
    List<TokenEvent> fromA = new ArrayList<>();
    fromA.add(stream.next()); // the first token: the sequence runs on a
    CompletableFuture<DrainReport> drain =
        CompletableFuture.supplyAsync(
            () -> a.engine.drain(new TargetsOnB(), b.transfer, Duration.ofMinutes(1)), drainThread);
    long guard = System.nanoTime() + TimeUnit.SECONDS.toNanos(60); // a hang guard only
    while (a.engine.accepting()) {
      assertTrue(System.nanoTime() < guard, "the drain did not start");
      Thread.onSpinWait();
    }
    expertsA.open();
    fromA.addAll(drainStream(stream));
    assertEquals(1, RecordingSink.await(drain, "the drain").migrated());
    TokenEvent last = fromA.get(fromA.size() - 1);
    assertTrue(last.hasMigrated(), "a's stream ends with Migrated: " + last);
    Migrated m = last.getMigrated();
    assertEquals(p.positionDelta(), m.getPositionDelta(), "Migrated carries the delta");

    DecodeRequest.Builder resume = decodeRequest("mover", m.getTransferId(), p.ids());
    resume.addAllGeneratedTokenIds(m.getGeneratedTokenIdsList());
    resume.setPositionDelta(m.getPositionDelta());
    List<TokenEvent> fromB = drainStream(onB.decode(resume.build()));
    assertArrayEquals(
        expected,
        IntStream.concat(IntStream.of(ints(tokens(fromA))), IntStream.of(ints(tokens(fromB))))
            .toArray(),
        "a's tokens then b's are the reference's, none lost or repeated");
  }

  /** Reservations on node b, for a's drain. */
  private final class TargetsOnB implements MigrationTargets {
    @Override
    public Optional<MigrationTarget> reserve(String requestId, int kvTokens, int maxNewTokens) {
      Reservation r = b.engine.reserve(requestId, kvTokens, maxNewTokens);
      return Optional.of(new MigrationTarget(b.name, "in-process:b", r.transferId(), b.endpoint()));
    }

    @Override
    public void release(MigrationTarget target) {
      b.engine.release(target.transferId());
    }
  }
}
