package dev.pdserve.core.kv.flight;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.kv.PagedSequenceKv;
import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.engine.ContiguousKv;
import java.time.Duration;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.Location;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The KV transfer's behaviour, run against each receive path: real Flight servers on 127.0.0.1:0
 * and real allocators; every test ends with zero bytes held and every block free.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
abstract class KvTransferContract {
  /** The server configuration under test. */
  abstract KvTransferServer.Options serverOptions();

  /** The client configuration under test. */
  abstract KvTransferClient.Options clientOptions();

  /** The KV dtype of both ends: fp32 unless a subclass tests another. */
  KvDtype dtype() {
    return KvDtype.FP32;
  }

  private static final Duration WAIT = Duration.ofSeconds(20);
  private static final int PROMPT = 37; // two full blocks of 16 and a partial one

  private final ModelConfig cfg = ModelPresets.get("tiny");
  private final KvLayout layout = KvLayout.of(cfg, dtype());
  private BufferAllocator root;
  private KvBlockPool decodePool;
  private KvTransferServer server;
  private KvTransferClient client;
  private Location location;

  @BeforeEach
  void setUp() throws Exception {
    root = new RootAllocator();
    decodePool = new KvBlockPool(root, "decode-pool", layout, 16L * layout.blockBytes());
    server =
        new KvTransferServer(
                root, decodePool, Location.forGrpcInsecure("127.0.0.1", 0), serverOptions())
            .start();
    location = Location.forGrpcInsecure("127.0.0.1", server.port());
    client = new KvTransferClient(root, layout, clientOptions());
  }

  @AfterEach
  void tearDown() throws Exception {
    client.close();
    server.close();
    assertEquals(decodePool.totalBlocks(), decodePool.freeBlocks(), "KV blocks leaked");
    decodePool.close();
    assertEquals(
        0, root.getAllocatedMemory(), "Arrow memory still allocated at the end of the test");
    root.close();
  }

  /**
   * Per-layer K and V of a prompt, as the engine writes them: [kvHeads][tokens][headDim], values of
   * the KV dtype (the layer graph rounds them so).
   */
  private float[][][] promptKv(int tokens, long seed) {
    Random r = new Random(seed);
    float[][][] kv = new float[cfg.numLayers()][2][cfg.numKvHeads() * tokens * cfg.headDim()];
    for (float[][] layer : kv) {
      for (float[] half : layer) {
        for (int i = 0; i < half.length; i++) {
          half[i] = dtype().round((float) r.nextGaussian());
        }
      }
    }
    return kv;
  }

  private ContiguousKv reference(float[][][] kv, int tokens) {
    ContiguousKv c = new ContiguousKv(cfg, tokens);
    for (int l = 0; l < cfg.numLayers(); l++) {
      c.write(l, kv[l][0], kv[l][1], 0, tokens, tokens);
    }
    c.advance(tokens);
    return c;
  }

  /**
   * Fails with the layer and head that differ if the adopted blocks do not read back the reference.
   */
  private void assertSameKv(ContiguousKv expected, PagedSequenceKv actual) {
    assertEquals(expected.length(), actual.length());
    int n = cfg.numKvHeads() * expected.length() * cfg.headDim();
    for (int l = 0; l < cfg.numLayers(); l++) {
      float[] ek = new float[n];
      float[] ev = new float[n];
      float[] ak = new float[n];
      float[] av = new float[n];
      expected.read(l, ek, ev, 0, expected.length());
      actual.read(l, ak, av, 0, expected.length());
      assertArrayEquals(bits(ek), bits(ak), "K of layer " + l + " differs after the transfer");
      assertArrayEquals(bits(ev), bits(av), "V of layer " + l + " differs after the transfer");
    }
  }

  private static int[] bits(float[] f) {
    int[] b = new int[f.length];
    for (int i = 0; i < f.length; i++) {
      b[i] = Float.floatToRawIntBits(f[i]);
    }
    return b;
  }

  @Test
  void transferredPromptLandsByteIdenticalInTheDecodePool() throws Exception {
    float[][][] kv = promptKv(PROMPT, 1);
    int[] reserved = decodePool.allocate(layout.blocksFor(PROMPT));
    IncomingTransfer in = server.expect("req-1", reserved, PROMPT);
    try (OutgoingTransfer out = client.open(location, "req-1")) {
      for (int l = 0; l < cfg.numLayers(); l++) {
        out.sendLayer(l, kv[l][0], kv[l][1], PROMPT);
      }
      out.complete();
    }
    assertEquals(in, in.await(WAIT));
    assertEquals(cfg.numLayers(), in.layersReceived());
    PagedSequenceKv adopted = PagedSequenceKv.adopt(decodePool, in.blocks(), PROMPT);
    ContiguousKv expected = reference(kv, PROMPT);
    assertSameKv(expected, adopted);
    adopted.release();
  }

  @Test
  void prefillStreamsEachLayerFromItsPagedCacheAsSoonAsItIsWritten() throws Exception {
    float[][][] kv = promptKv(PROMPT, 2);
    try (KvBlockPool prefillPool =
        new KvBlockPool(root, "prefill-pool", layout, 8L * layout.blockBytes())) {
      IncomingTransfer in =
          server.expect("req-2", decodePool.allocate(layout.blocksFor(PROMPT)), PROMPT);
      PagedSequenceKv prefill = new PagedSequenceKv(prefillPool);
      try (OutgoingTransfer out = client.open(location, "req-2")) {
        prefill.setLayerWrittenListener(
            (layer, first, count) -> out.sendLayer(layer, prefill, first, first + count));
        // The engine's prefill, in two chunks: every layer is shipped right after it is written,
        // and the first chunk's partial block is sent again, fuller, with the second chunk.
        int[] chunks = {20, PROMPT - 20};
        int at = 0;
        for (int c : chunks) {
          for (int l = 0; l < cfg.numLayers(); l++) {
            float[] k = new float[cfg.numKvHeads() * c * cfg.headDim()];
            float[] v = new float[k.length];
            for (int h = 0; h < cfg.numKvHeads(); h++) {
              int src = (h * PROMPT + at) * cfg.headDim();
              System.arraycopy(kv[l][0], src, k, h * c * cfg.headDim(), c * cfg.headDim());
              System.arraycopy(kv[l][1], src, v, h * c * cfg.headDim(), c * cfg.headDim());
            }
            prefill.write(l, k, v, 0, c, c);
          }
          prefill.advance(c);
          at += c;
        }
        out.complete();
      }
      in.await(WAIT);
      PagedSequenceKv adopted = PagedSequenceKv.adopt(decodePool, in.blocks(), PROMPT);
      assertSameKv(reference(kv, PROMPT), adopted);
      adopted.release();
      prefill.release();
    }
  }

  @Test
  void layersArrivingOutOfOrderCompleteOnlyWithTheLastOne() throws Exception {
    float[][][] kv = promptKv(PROMPT, 3);
    IncomingTransfer in =
        server.expect("req-3", decodePool.allocate(layout.blocksFor(PROMPT)), PROMPT);
    try (OutgoingTransfer out = client.open(location, "req-3")) {
      for (int l : new int[] {3, 1, 0}) {
        out.sendLayer(l, kv[l][0], kv[l][1], PROMPT);
      }
      long until = System.nanoTime() + WAIT.toNanos();
      while (in.layersReceived() < 3 && System.nanoTime() < until) {
        Thread.sleep(5);
      }
      assertEquals(3, in.layersReceived());
      assertFalse(in.completion().isDone(), "completed before layer 2 arrived");
      out.sendLayer(2, kv[2][0], kv[2][1], PROMPT);
      out.complete();
    }
    in.await(WAIT);
    PagedSequenceKv adopted = PagedSequenceKv.adopt(decodePool, in.blocks(), PROMPT);
    assertSameKv(reference(kv, PROMPT), adopted);
    adopted.release();
  }

  @Test
  void retriedLayersAreCountedOnceAndNeverOverwriteWhatArrived() throws Exception {
    float[][][] kv = promptKv(PROMPT, 4);
    float[][][] garbage = promptKv(PROMPT, 99);
    IncomingTransfer in =
        server.expect("req-4", decodePool.allocate(layout.blocksFor(PROMPT)), PROMPT);
    try (OutgoingTransfer out = client.open(location, "req-4")) {
      out.sendLayer(0, kv[0][0], kv[0][1], PROMPT);
      out.sendLayer(0, kv[0][0], kv[0][1], PROMPT); // a retry of the same layer
      out.sendLayer(0, garbage[0][0], garbage[0][1], PROMPT); // a retry that differs must not win
      for (int l = 1; l < cfg.numLayers(); l++) {
        out.sendLayer(l, kv[l][0], kv[l][1], PROMPT);
      }
      out.complete();
    }
    in.await(WAIT);
    assertEquals(cfg.numLayers(), in.layersReceived());
    PagedSequenceKv adopted = PagedSequenceKv.adopt(decodePool, in.blocks(), PROMPT);
    ContiguousKv expected = reference(kv, PROMPT);

    // Decoding continues into the last block; a whole push retried after completion (say the
    // prefill node never saw its acknowledgement) is acknowledged and writes nothing.
    float[] k1 = new float[cfg.numKvHeads() * cfg.headDim()];
    Arrays.fill(k1, 7f);
    for (int l = 0; l < cfg.numLayers(); l++) {
      adopted.write(l, k1, k1, 0, 1, 1);
      expected.write(l, k1, k1, 0, 1, 1);
    }
    adopted.advance(1);
    expected.advance(1);
    try (OutgoingTransfer retry = client.open(location, "req-4")) {
      for (int l = 0; l < cfg.numLayers(); l++) {
        retry.sendLayer(l, garbage[l][0], garbage[l][1], PROMPT);
      }
      retry.complete();
    }
    assertSameKv(expected, adopted);
    adopted.release();
  }

  @Test
  void abandonedPushLeavesTheTransferPendingForARetryAndLeaksNothing() throws Exception {
    float[][][] kv = promptKv(PROMPT, 12);
    IncomingTransfer in =
        server.expect("req-12", decodePool.allocate(layout.blocksFor(PROMPT)), PROMPT);
    try (KvBlockPool prefillPool =
        new KvBlockPool(root, "prefill-pool", layout, 8L * layout.blockBytes())) {
      PagedSequenceKv prefill = new PagedSequenceKv(prefillPool);
      for (int l = 0; l < cfg.numLayers(); l++) {
        prefill.write(l, kv[l][0], kv[l][1], 0, PROMPT, PROMPT);
      }
      prefill.advance(PROMPT);
      OutgoingTransfer first = client.open(location, "req-12");
      first.sendLayer(0, prefill, PROMPT);
      first.sendLayer(1, prefill, PROMPT);
      first.close(); // the prefill node gives up on this attempt (say, its engine failed)
      first.close();
      assertFalse(in.completion().isDone());
      try (OutgoingTransfer retry = client.open(location, "req-12")) {
        for (int l = 0; l < cfg.numLayers(); l++) {
          retry.sendLayer(l, prefill, PROMPT);
        }
        retry.complete();
      }
      prefill.release(); // the pool closes without leaks only if no send still holds its blocks
    }
    in.await(WAIT);
    PagedSequenceKv adopted = PagedSequenceKv.adopt(decodePool, in.blocks(), PROMPT);
    assertSameKv(reference(kv, PROMPT), adopted);
    adopted.release();
  }

  @Test
  void unknownTransferIdFailsWithNotFound() {
    float[][][] kv = promptKv(PROMPT, 5);
    KvTransferException e =
        assertThrows(
            KvTransferException.class,
            () -> {
              try (OutgoingTransfer out = client.open(location, "no-such-request")) {
                for (int l = 0; l < cfg.numLayers(); l++) {
                  out.sendLayer(l, kv[l][0], kv[l][1], PROMPT);
                }
                out.complete();
              }
            });
    assertEquals(FlightStatusCode.NOT_FOUND, e.code(), e.getMessage());
    assertTrue(e.getMessage().contains("no-such-request"), e.getMessage());
  }

  @Test
  void cancelledTransferWritesNothingMoreAndFreesNothing() throws Exception {
    float[][][] kv = promptKv(PROMPT, 6);
    int[] reserved = decodePool.allocate(layout.blocksFor(PROMPT));
    int freeBefore = decodePool.freeBlocks();
    IncomingTransfer in = server.expect("req-6", reserved, PROMPT);
    try (OutgoingTransfer out = client.open(location, "req-6")) {
      out.sendLayer(0, kv[0][0], kv[0][1], PROMPT);
      assertTrue(server.cancel("req-6"));
      assertFalse(server.cancel("req-6"), "a second cancel found it pending");
      ExecutionException failed =
          assertThrows(ExecutionException.class, () -> in.completion().get(5, TimeUnit.SECONDS));
      assertInstanceOf(CancellationException.class, failed.getCause());
      assertEquals(freeBefore, decodePool.freeBlocks(), "cancel freed or took blocks");

      // The decode node gives the blocks to another sequence; a late push must not touch them.
      decodePool.free(reserved);
      PagedSequenceKv other =
          PagedSequenceKv.withReservation(decodePool, decodePool.allocate(reserved.length));
      float[][][] mine = promptKv(PROMPT, 7);
      for (int l = 0; l < cfg.numLayers(); l++) {
        other.write(l, mine[l][0], mine[l][1], 0, PROMPT, PROMPT);
      }
      other.advance(PROMPT);
      KvTransferException late =
          assertThrows(
              KvTransferException.class,
              () -> {
                for (int l = 1; l < cfg.numLayers(); l++) {
                  out.sendLayer(l, kv[l][0], kv[l][1], PROMPT);
                }
                out.complete();
              });
      assertEquals(FlightStatusCode.CANCELLED, late.code(), late.getMessage());
      assertSameKv(reference(mine, PROMPT), other);
      other.release();
    }
  }

  @Test
  void batchesThatDoNotFitTheTransferAreInvalidArgumentAndFailIt() throws Exception {
    IncomingTransfer in =
        server.expect("req-7", decodePool.allocate(layout.blocksFor(PROMPT)), PROMPT);
    float[][][] kv = promptKv(PROMPT + 16, 8);
    KvTransferException e =
        assertThrows(
            KvTransferException.class,
            () -> {
              try (OutgoingTransfer out = client.open(location, "req-7")) {
                out.sendLayer(0, kv[0][0], kv[0][1], PROMPT + 16); // one block more than reserved
                out.complete();
              }
            });
    assertEquals(FlightStatusCode.INVALID_ARGUMENT, e.code(), e.getMessage());
    assertTrue(
        e.getMessage().contains("block 2 holds 5 of the transfer's 37 tokens, a row claims 16"),
        e.getMessage());
    ExecutionException failed =
        assertThrows(ExecutionException.class, () -> in.completion().get(5, TimeUnit.SECONDS));
    assertInstanceOf(KvTransferException.class, failed.getCause());
    decodePool.free(in.blocks());
  }

  @Test
  void senderWithAnotherModelShapeIsInvalidArgument() throws Exception {
    IncomingTransfer in =
        server.expect("req-8", decodePool.allocate(layout.blocksFor(PROMPT)), PROMPT);
    KvLayout other =
        new KvLayout(
            layout.blockSize(),
            layout.layers(),
            layout.kvHeads(),
            layout.headDim() * 2,
            layout.dtype());
    try (KvTransferClient wrong = new KvTransferClient(root, other, clientOptions())) {
      float[] k = new float[other.kvHeads() * PROMPT * other.headDim()];
      KvTransferException e =
          assertThrows(
              KvTransferException.class,
              () -> {
                try (OutgoingTransfer out = wrong.open(location, "req-8")) {
                  out.sendLayer(0, k, k, PROMPT);
                  out.complete();
                }
              });
      assertEquals(FlightStatusCode.INVALID_ARGUMENT, e.code(), e.getMessage());
    }
    assertTrue(in.completion().isCompletedExceptionally());
    decodePool.free(in.blocks());
  }

  @Test
  void senderOfAnotherKvDtypeIsInvalidArgumentNamingBoth() throws Exception {
    IncomingTransfer in =
        server.expect("req-13", decodePool.allocate(layout.blocksFor(PROMPT)), PROMPT);
    KvDtype theirs = dtype() == KvDtype.BF16 ? KvDtype.FP16 : KvDtype.BF16;
    KvLayout other = KvLayout.of(cfg, theirs);
    try (KvTransferClient wrong = new KvTransferClient(root, other, clientOptions())) {
      float[] k = new float[other.kvHeads() * PROMPT * other.headDim()];
      KvTransferException e =
          assertThrows(
              KvTransferException.class,
              () -> {
                try (OutgoingTransfer out = wrong.open(location, "req-13")) {
                  out.sendLayer(0, k, k, PROMPT);
                  out.complete();
                }
              });
      assertEquals(FlightStatusCode.INVALID_ARGUMENT, e.code(), e.getMessage());
      assertTrue(
          e.getMessage()
              .contains(
                  "KV dtype mismatch: this node stores "
                      + dtype().configName()
                      + " KV, the sender sends "
                      + theirs.configName()),
          e.getMessage());
    }
    assertTrue(in.completion().isCompletedExceptionally());
    decodePool.free(in.blocks());
  }

  @Test
  void completeFailsWhenLayersAreMissing() throws Exception {
    float[][][] kv = promptKv(PROMPT, 9);
    IncomingTransfer in =
        server.expect("req-9", decodePool.allocate(layout.blocksFor(PROMPT)), PROMPT);
    try (OutgoingTransfer out = client.open(location, "req-9")) {
      out.sendLayer(0, kv[0][0], kv[0][1], PROMPT);
      out.sendLayer(2, kv[2][0], kv[2][1], PROMPT);
      KvTransferException e = assertThrows(KvTransferException.class, out::complete);
      assertTrue(e.getMessage().contains("holds 2 of 4 layers"), e.getMessage());
    }
    assertTrue(server.cancel("req-9"));
    decodePool.free(in.blocks());
  }

  @Test
  void parallelStreamsOverSeveralConnectionsDeliverEveryLayer() throws Exception {
    float[][][] kv = promptKv(PROMPT, 10);
    KvTransferClient.Options opts =
        clientOptions().withStreams(3, 2).withMaxBatchBytes(layout.layerBytes());
    try (KvTransferClient parallel = new KvTransferClient(root, layout, opts)) {
      for (int round = 0; round < 2; round++) { // the second round reuses the connections
        String id = "req-10-" + round;
        IncomingTransfer in =
            server.expect(id, decodePool.allocate(layout.blocksFor(PROMPT)), PROMPT);
        try (OutgoingTransfer out = parallel.open(location, id)) {
          for (int l = cfg.numLayers() - 1; l >= 0; l--) {
            out.sendLayer(l, kv[l][0], kv[l][1], PROMPT);
          }
          out.complete();
        }
        in.await(WAIT);
        PagedSequenceKv adopted = PagedSequenceKv.adopt(decodePool, in.blocks(), PROMPT);
        assertSameKv(reference(kv, PROMPT), adopted);
        adopted.release();
      }
    }
  }

  @Test
  void expectRejectsBlocksItCannotUse() {
    int[] blocks = decodePool.allocate(3);
    assertThrows(
        IllegalArgumentException.class,
        () -> server.expect("a", new int[] {blocks[0], blocks[1]}, PROMPT));
    assertThrows(
        IllegalArgumentException.class,
        () -> server.expect("a", new int[] {blocks[0], blocks[0], blocks[1]}, PROMPT));
    decodePool.free(new int[] {blocks[2]});
    assertThrows(IllegalArgumentException.class, () -> server.expect("a", blocks, PROMPT));
    int[] again = decodePool.allocate(1);
    int[] ok = {blocks[0], blocks[1], again[0]};
    server.expect("a", ok, PROMPT);
    assertThrows(IllegalStateException.class, () -> server.expect("a", ok, PROMPT));
    assertTrue(server.cancel("a"));
    decodePool.free(ok);
  }

  @Test
  void closingTheServerFailsPendingTransfersWithUnavailable() throws Exception {
    IncomingTransfer in =
        server.expect("req-11", decodePool.allocate(layout.blocksFor(PROMPT)), PROMPT);
    server.close();
    ExecutionException e =
        assertThrows(ExecutionException.class, () -> in.completion().get(5, TimeUnit.SECONDS));
    assertEquals(FlightStatusCode.UNAVAILABLE, ((KvTransferException) e.getCause()).code());
    decodePool.free(in.blocks());
  }
}
