package dev.pdserve.core.kv.flight;

import static dev.pdserve.core.kv.flight.KvReceiveScenario.LAYOUT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import com.sun.management.ThreadMXBean;
import dev.pdserve.core.kv.flight.KvFlightData.KvBatch;
import dev.pdserve.core.kv.flight.KvFlightData.Row;
import io.grpc.Status;
import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.arrow.flight.impl.Flight;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;
import org.junit.jupiter.api.Test;

/**
 * Fuzzes the KV wire format as a decode node parses it: DoPut streams on the DIRECT receive path
 * ({@link DirectPut}, which reads FlightData and Arrow IPC headers by hand and copies rows into
 * pool blocks, with {@link KvReceiver}'s rules), against a real {@link
 * dev.pdserve.core.kv.KvBlockPool} and one expected transfer. Inputs are structured (a schema with
 * changed metadata or columns; record batches with fuzzed layer / block / token values, fills, row
 * counts, field nodes, buffer offsets and lengths) and then mutated as bytes (flipped, truncated),
 * arriving in one buffer or split over several transport buffers.
 *
 * <p>Whatever arrives, each DoPut ends once, acknowledged or refused with a sender's error (never
 * INTERNAL, never an exception out of the call); no block outside the transfer changes; nothing
 * changes once the transfer is cancelled, failed or complete; the allocator is back to zero.
 * ({@link KvReceiveScenario}). See docs/SECURITY.md, "Fuzzing".
 */
class DirectPutFuzzTest {
  private static final String[] METADATA_KEYS = {
    KvWire.FORMAT,
    KvWire.DTYPE,
    KvWire.BLOCK_SIZE,
    KvWire.LAYERS,
    KvWire.KV_HEADS,
    KvWire.HEAD_DIM,
    KvWire.ELEMENT_BYTES
  };

  /**
   * Heap one run may take: its messages are a few KiB (libFuzzer's inputs are at most 4 KiB), so
   * far more means a length a sender claims was believed (the allocation may not fail outright with
   * a large heap, as it did with the fuzzer's).
   */
  private static final long MAX_HEAP_PER_RUN = 128L << 20;

  private static boolean classesLoaded;

  private static final ThreadMXBean THREADS = (ThreadMXBean) ManagementFactory.getThreadMXBean();

  @FuzzTest(maxDuration = "20s")
  void pushedBytesLandOnlyInTheTransfersBlocksOrAreRefused(FuzzedDataProvider data) {
    loadClassesOnce();
    long allocatedBefore = THREADS.getCurrentThreadAllocatedBytes();
    int[] order = permutation(data, KvReceiveScenario.POOL_BLOCKS);
    int nBlocks = data.consumeInt(1, 4);
    int[] blocks = Arrays.copyOf(order, nBlocks);
    int tokens = data.consumeInt(1, nBlocks * LAYOUT.blockSize());
    try (KvReceiveScenario s = new KvReceiveScenario(blocks, tokens)) {
      if (data.consumeInt(0, 15) == 0) {
        s.cancel();
      }
      int calls = data.consumeInt(1, 2);
      for (int c = 0; c < calls; c++) {
        DoPutCall call = s.call();
        int messages = data.consumeInt(0, 6);
        StringBuilder what = new StringBuilder("call " + c + ":");
        for (int m = 0; m < messages && !call.closed(); m++) {
          byte[] msg = mutated(data, message(data, m == 0, s.transfer().blockCount()));
          what.append(' ').append(msg.length).append('B');
          call.send(delivered(data, msg));
        }
        s.checkEnded(call, what.toString());
      }
    }
    long allocated = THREADS.getCurrentThreadAllocatedBytes() - allocatedBefore;
    assertTrue(
        allocated < MAX_HEAP_PER_RUN,
        "one run of at most a few KiB of messages allocated " + allocated + " bytes of heap");
  }

  /** The harness accepts a well-formed push: every layer lands byte for byte, then it completes. */
  @Test
  void wellFormedPushCompletesTheTransferWithItsBytes() {
    int[] blocks = {4, 1};
    try (KvReceiveScenario s = new KvReceiveScenario(blocks, 6)) {
      DoPutCall call = s.call();
      call.send(
          new ByteArrayInputStream(
              KvFlightData.message(
                  KvReceiveScenario.descriptor(),
                  KvFlightData.schemaHeader(KvWire.schema(LAYOUT)),
                  null,
                  null)));
      for (int layer = 0; layer < LAYOUT.layers(); layer++) {
        KvBatch b =
            KvBatch.of(
                List.of(
                    new Row(layer, 0, 4, (byte) (10 + layer)),
                    new Row(layer, 1, 2, (byte) (20 + layer))),
                LAYOUT.layerBytes());
        byte[] msg = KvFlightData.message(null, b.header(), null, b.body);
        call.send(ReceiveBuffers.split(msg, 7, msg.length - 70, msg.length - 3));
      }
      s.checkEnded(call, "well-formed push");
      assertEquals(Status.Code.OK, call.closes().get(0).getCode(), "the push's status");
      assertEquals(IncomingTransfer.State.COMPLETE, s.transfer().state(), "the transfer's state");
      for (int layer = 0; layer < LAYOUT.layers(); layer++) {
        byte[] first = new byte[LAYOUT.layerBytes()];
        Arrays.fill(first, (byte) (10 + layer));
        byte[] second = new byte[LAYOUT.layerBytes()];
        Arrays.fill(second, (byte) (20 + layer));
        assertArrayEquals(first, s.layer(4, layer), "pool block 4 (the transfer's block 0)");
        assertArrayEquals(second, s.layer(1, layer), "pool block 1 (the transfer's block 1)");
      }
    }
  }

  /** The pool check fires when a block outside the transfer changes. */
  @Test
  void harnessNoticesAWriteOutsideTheTransfer() {
    try (KvReceiveScenario s = new KvReceiveScenario(new int[] {0}, 4)) {
      DoPutCall call = s.call();
      s.pool().writeLayerBytes(3, 0, 0, ByteBuffer.wrap(new byte[LAYOUT.layerBytes()]));
      AssertionError e = assertThrows(AssertionError.class, () -> s.checkEnded(call, "probe"));
      assertTrue(
          e.getMessage().contains("block 3 layer 0 is outside the transfer"), e.getMessage());
    }
  }

  /**
   * Runs a push once per JVM before the first measured run: loading (and, while fuzzing,
   * instrumenting) the classes of the receive path allocates far more than a run does.
   */
  private void loadClassesOnce() {
    if (!classesLoaded) {
      classesLoaded = true;
      wellFormedPushCompletesTheTransferWithItsBytes();
    }
  }

  // ---- one message, built from the fuzzer's choices ----

  private static byte[] message(FuzzedDataProvider data, boolean first, int transferBlocks) {
    Flight.FlightDescriptor descriptor = first ? descriptor(data) : null;
    return switch (data.consumeInt(0, 4)) {
      case 0 ->
          KvFlightData.message(descriptor, KvFlightData.schemaHeader(schema(data)), null, null);
      case 1, 2 -> {
        KvBatch b = batch(data, transferBlocks);
        yield KvFlightData.message(descriptor, b.header(), null, b.body);
      }
      case 3 ->
          KvFlightData.message(descriptor, data.consumeBytes(data.consumeInt(0, 64)), null, null);
      default -> KvFlightData.message(descriptor, null, data.consumeBytes(8), null);
    };
  }

  private static Flight.FlightDescriptor descriptor(FuzzedDataProvider data) {
    return switch (data.consumeInt(0, 9)) {
      case 1 -> null;
      case 2 -> KvFlightData.command(data.consumeString(16));
      case 3 ->
          Flight.FlightDescriptor.newBuilder()
              .setType(Flight.FlightDescriptor.DescriptorType.PATH)
              .addPath(KvReceiveScenario.TRANSFER)
              .build();
      default -> KvReceiveScenario.descriptor();
    };
  }

  /** The layout's schema, or one with a metadata value, a column or the row width changed. */
  private static Schema schema(FuzzedDataProvider data) {
    Schema ours = KvWire.schema(LAYOUT);
    Map<String, String> meta = new HashMap<>(ours.getCustomMetadata());
    List<Field> fields = new ArrayList<>(ours.getFields());
    switch (data.consumeInt(0, 5)) {
      case 1 -> meta.put(data.pickValue(METADATA_KEYS), data.consumeString(12));
      case 2 -> meta.remove(data.pickValue(METADATA_KEYS));
      case 3 ->
          fields.set(
              3,
              new Field(
                  KvWire.KV,
                  FieldType.notNullable(new ArrowType.FixedSizeBinary(data.consumeInt(1, 256))),
                  null));
      case 4 -> fields.remove(data.consumeInt(0, fields.size() - 1));
      case 5 -> meta = null;
      default -> {}
    }
    return new Schema(fields, meta);
  }

  /** Rows near the valid ranges (sometimes any int), then one header value perhaps changed. */
  private static KvBatch batch(FuzzedDataProvider data, int transferBlocks) {
    int n = data.consumeInt(0, 10);
    List<Row> rows = new ArrayList<>();
    for (int r = 0; r < n; r++) {
      rows.add(
          new Row(
              nearOrAny(data, -1, LAYOUT.layers()),
              nearOrAny(data, -1, transferBlocks),
              nearOrAny(data, -1, LAYOUT.blockSize() + 1),
              data.consumeByte()));
    }
    KvBatch b = KvBatch.of(rows, LAYOUT.layerBytes());
    switch (data.consumeInt(0, 4)) {
      case 1 -> b.length = data.consumeLong();
      case 2 ->
          b.nodes[data.consumeInt(0, b.nodes.length - 1)] =
              new long[] {data.consumeLong(), data.consumeLong()};
      case 3 ->
          b.buffers[data.consumeInt(0, b.buffers.length - 1)] =
              new long[] {data.consumeLong(), data.consumeLong()};
      case 4 -> b.compressed = true;
      default -> {}
    }
    return b;
  }

  private static int nearOrAny(FuzzedDataProvider data, int min, int max) {
    return data.consumeBoolean() ? data.consumeInt() : data.consumeInt(min, max);
  }

  /** The message with up to 3 bytes changed and perhaps cut short. */
  private static byte[] mutated(FuzzedDataProvider data, byte[] msg) {
    int changes = data.consumeInt(0, 3);
    for (int i = 0; i < changes && msg.length > 0; i++) {
      msg[data.consumeInt(0, msg.length - 1)] = data.consumeByte();
    }
    if (data.consumeInt(0, 7) == 0) {
      msg = Arrays.copyOf(msg, data.consumeInt(0, msg.length));
    }
    return msg;
  }

  /** In one heap buffer (the copying path) or over up to 4 transport buffers (zero-copy). */
  private static InputStream delivered(FuzzedDataProvider data, byte[] msg) {
    if (data.consumeBoolean()) {
      return new ByteArrayInputStream(msg);
    }
    int[] cuts = new int[data.consumeInt(0, 3)];
    for (int i = 0; i < cuts.length; i++) {
      cuts[i] = data.consumeInt(0, msg.length);
    }
    return ReceiveBuffers.split(msg, cuts);
  }

  private static int[] permutation(FuzzedDataProvider data, int n) {
    int[] p = new int[n];
    for (int i = 0; i < n; i++) {
      p[i] = i;
    }
    for (int i = n - 1; i > 0; i--) {
      int j = data.consumeInt(0, i);
      int t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }
}
