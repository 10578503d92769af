package dev.pdserve.core.kv.flight;

import dev.pdserve.core.kv.PagedSequenceKv;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.apache.arrow.flight.CallOptions;
import org.apache.arrow.flight.CallStatus;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.vector.FixedSizeBinaryVector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.ipc.message.ArrowFieldNode;

/** A push stream over Flight's own client ({@link KvTransferClient.SendPath#FLIGHT_CLIENT}). */
final class FlightPushLane extends PushLane {
  private final VectorSchemaRoot root;
  private final IntVector layers;
  private final IntVector blocks;
  private final IntVector tokens;
  private final FixedSizeBinaryVector kv;
  private final FlightClient.ClientStreamListener listener;

  FlightPushLane(Context ctx, FlightClient client, boolean zeroCopy) {
    super(ctx);
    root = VectorSchemaRoot.create(KvWire.schema(ctx.layout()), ctx.allocator());
    try {
      layers = (IntVector) root.getVector(KvWire.LAYER);
      blocks = (IntVector) root.getVector(KvWire.BLOCK);
      tokens = (IntVector) root.getVector(KvWire.TOKENS);
      kv = (FixedSizeBinaryVector) root.getVector(KvWire.KV);
      long left = Math.max(1, ctx.nanosLeft());
      listener =
          client.startPut(
              KvWire.descriptor(ctx.id()),
              root,
              ack,
              CallOptions.timeout(left, TimeUnit.NANOSECONDS));
      listener.setUseZeroCopy(zeroCopy);
    } catch (RuntimeException e) {
      root.close();
      throw e;
    }
  }

  @Override
  void send(
      int layer, int first, int rows, int transferTokens, PagedSequenceKv paged, RowFiller filler) {
    try {
      layers.allocateNew(rows);
      blocks.allocateNew(rows);
      tokens.allocateNew(rows);
      for (int r = 0; r < rows; r++) {
        layers.set(r, layer);
        blocks.set(r, first + r);
        tokens.set(r, ctx.validTokens(first + r, transferTokens));
      }
      // Hand the filled buffer to the vector as is: no zeroing pass over megabytes.
      kv.loadFieldBuffers(
          new ArrowFieldNode(rows, 0),
          List.of(ctx.allocator().getEmpty(), stage(first, rows, filler)));
      root.setRowCount(rows);
      awaitReady();
      listener.putNext();
    } finally {
      root.clear();
    }
  }

  /** Flight's putNext spins on the CPU until the stream is ready; wait here instead, parked. */
  private void awaitReady() {
    long park = 2_000;
    while (!listener.isReady()) {
      ack.throwIfFailed(ctx.id());
      ctx.checkWaiting();
      LockSupport.parkNanos(park);
      park = Math.min(park * 2, 200_000);
    }
    ack.throwIfFailed(ctx.id());
  }

  @Override
  void halfClose() {
    listener.completed();
  }

  @Override
  void cancel(String why) {
    synchronized (this) { // not concurrently with a putNext; a waiting sender sees the abort
      listener.error(CallStatus.CANCELLED.withDescription(why).toRuntimeException());
    }
  }

  @Override
  void close() {
    root.close();
    super.close();
  }
}
