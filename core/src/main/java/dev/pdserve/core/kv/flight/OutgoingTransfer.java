package dev.pdserve.core.kv.flight;

import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.kv.PagedSequenceKv;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.apache.arrow.flight.CallOptions;
import org.apache.arrow.flight.CallStatus;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.PutResult;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.FixedSizeBinaryVector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.ipc.message.ArrowFieldNode;

/**
 * One KV push in progress: send each layer as soon as it exists ({@link #sendLayer}), then {@link
 * #complete()} to wait for the decode node's acknowledgement. {@link #close()} releases everything
 * exactly once and cancels the push if it did not complete.
 *
 * <p>A send copies the layer into an Arrow batch (one memcpy per block from a paged cache), waits
 * while the stream's gRPC buffer is full (backpressure: the engine is held back rather than memory
 * growing), queues the batch and returns; the network write overlaps the next layer's compute.
 */
public final class OutgoingTransfer implements AutoCloseable {
  private enum State {
    OPEN,
    COMPLETED,
    FAILED,
    CLOSED
  }

  private final String id;
  private final KvLayout layout;
  private final BufferAllocator allocator;
  private final KvTransferClient.Options options;
  private final long deadlineNanos;
  private final List<Lane> lanes = new ArrayList<>();
  private final int rowsPerBatch;
  private State state = State.OPEN;
  private KvTransferException failure;
  private long bytesSent;
  private long firstSendNanos;

  OutgoingTransfer(BufferAllocator allocator, KvLayout layout, KvTransferClient.Options options, FlightClient[] clients, String id) {
    this.id = id;
    this.layout = layout;
    this.allocator = allocator;
    this.options = options;
    this.deadlineNanos = System.nanoTime() + options.timeout().toNanos();
    this.rowsPerBatch = Math.max(1, options.maxBatchBytes() / layout.layerBytes());
    try {
      for (int i = 0; i < options.streams(); i++) {
        lanes.add(new Lane(clients[i % clients.length]));
      }
    } catch (RuntimeException e) {
      abort();
      throw KvTransferException.of(id, e);
    }
  }

  public String id() {
    return id;
  }

  /** KV bytes queued so far (row bodies only). */
  public synchronized long bytesSent() {
    return bytesSent;
  }

  /** {@link System#nanoTime()} when the first layer was queued; 0 if none yet. */
  public synchronized long firstSendNanos() {
    return firstSendNanos;
  }

  /**
   * Sends positions {@code [0, tokens)} of {@code layer} from arrays laid out {@code
   * [kvHeads][tokens][headDim]}.
   */
  public void sendLayer(int layer, float[] k, float[] v, int tokens) {
    sendLayer(layer, k, v, 0, tokens, tokens);
  }

  /**
   * Sends positions {@code [0, tokens)} of {@code layer} from arrays laid out {@code
   * [kvHeads][stride][headDim]} from float {@code offset} — the layout {@code SequenceKv.write}
   * receives.
   */
  public void sendLayer(int layer, float[] k, float[] v, int offset, int stride, int tokens) {
    checkLayer(layer, tokens);
    int need = offset + (layout.kvHeads() - 1) * stride * layout.headDim() + tokens * layout.headDim();
    if (tokens > stride || k.length < need || v.length < need) {
      throw new IllegalArgumentException(
          "layer " + layer + ": " + tokens + " tokens at stride " + stride + " need " + need + " floats, got K " + k.length + ", V " + v.length);
    }
    send(layer, 0, layout.blocksFor(tokens), tokens, (data, at, block) -> fillFromArrays(data, at, block, k, v, offset, stride, tokens));
  }

  /** Sends positions {@code [0, tokens)} of {@code layer} out of a paged cache, one memcpy per block. */
  public void sendLayer(int layer, PagedSequenceKv kv, int tokens) {
    sendLayer(layer, kv, 0, tokens);
  }

  /**
   * Sends the blocks holding positions {@code [fromPosition, toPosition)} of {@code layer} out of a
   * paged cache (chunked prefill: a block sent again with more positions supersedes the earlier
   * copy on the receiver).
   */
  public void sendLayer(int layer, PagedSequenceKv kv, int fromPosition, int toPosition) {
    checkLayer(layer, toPosition);
    if (fromPosition < 0 || fromPosition >= toPosition || toPosition > kv.capacity()) {
      throw new IllegalArgumentException(
          "positions " + fromPosition + ".." + toPosition + " are not within the cache's " + kv.capacity());
    }
    if (!kv.pool().layout().equals(layout)) {
      throw new IllegalArgumentException("the cache's layout " + kv.pool().layout() + " is not this client's " + layout);
    }
    int first = fromPosition / layout.blockSize();
    send(layer, first, layout.blocksFor(toPosition), toPosition, (data, at, block) -> {
      kv.pool().copyLayerOut(kv.block(block), layer, data, at);
      zeroTail(data, at, validTokens(block, toPosition));
    });
  }

  /**
   * Ends every stream and waits until the decode node acknowledged them and holds every layer.
   *
   * @throws KvTransferException with the receiver's status if the push failed, or INTERNAL if
   *     the receiver still misses layers after every stream ended
   */
  public void complete() {
    synchronized (this) {
      ensureOpen();
      state = State.COMPLETED;
    }
    try {
      for (Lane lane : lanes) {
        synchronized (lane) {
          lane.listener.completed();
        }
      }
      int[] best = null;
      for (Lane lane : lanes) {
        lane.ack.await(deadlineNanos);
        int[] a = lane.ack.last;
        if (a != null && (best == null || a[0] > best[0])) {
          best = a;
        }
      }
      if (best == null || best[0] != best[1]) {
        throw new KvTransferException(
            FlightStatusCode.INTERNAL,
            "KV transfer '" + id + "': the decode node holds " + (best == null ? "?" : best[0]) + " of " + layout.layers()
                + " layers after every stream ended; were all layers sent?");
      }
    } catch (RuntimeException e) {
      KvTransferException f = KvTransferException.of(id, e);
      synchronized (this) {
        state = State.FAILED;
        failure = f;
      }
      abort();
      throw f;
    }
    releaseLanes();
  }

  /** Cancels the push unless it completed, and frees its buffers. Safe to call more than once. */
  @Override
  public void close() {
    State was;
    synchronized (this) {
      was = state;
      if (was == State.CLOSED) {
        return;
      }
      state = State.CLOSED;
    }
    if (was == State.OPEN) {
      abort();
    }
  }

  // ---- sending ----

  @FunctionalInterface
  private interface BlockFiller {
    /** Writes {@link KvLayout#layerBytes()} bytes of transfer block {@code block} at {@code at}. */
    void fill(ArrowBuf data, long at, int block);
  }

  private void send(int layer, int firstBlock, int endBlock, int tokens, BlockFiller filler) {
    Lane lane = lanes.get(layer % lanes.size());
    synchronized (lane) {
      for (int b = firstBlock; b < endBlock; b += rowsPerBatch) {
        int rows = Math.min(rowsPerBatch, endBlock - b);
        synchronized (this) {
          ensureOpen();
        }
        try {
          lane.encode(layer, b, rows, tokens, filler);
          lane.awaitReady();
          lane.listener.putNext();
        } catch (RuntimeException e) {
          KvTransferException f = KvTransferException.of(id, lane.ack.error != null ? lane.ack.error : e);
          synchronized (this) {
            if (state == State.OPEN) {
              state = State.FAILED;
              failure = f;
            }
          }
          throw f;
        } finally {
          lane.root.clear();
        }
        synchronized (this) {
          if (bytesSent == 0) {
            firstSendNanos = System.nanoTime();
          }
          bytesSent += (long) rows * layout.layerBytes();
        }
      }
    }
  }

  private void fillFromArrays(ArrowBuf data, long at, int block, float[] k, float[] v, int offset, int stride, int tokens) {
    int bs = layout.blockSize();
    int hd = layout.headDim();
    int valid = validTokens(block, tokens);
    FloatBuffer fb = data.nioBuffer(at, layout.layerBytes()).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    for (int half = 0; half < 2; half++) {
      float[] src = half == 0 ? k : v;
      for (int h = 0; h < layout.kvHeads(); h++) {
        int dst = (half * layout.kvHeads() + h) * bs * hd;
        fb.put(dst, src, offset + (h * stride + block * bs) * hd, valid * hd);
      }
    }
    zeroTail(data, at, valid);
  }

  /** Zeroes slots {@code [valid, blockSize)} of every head of a layer row: no stale KV on the wire. */
  private void zeroTail(ArrowBuf data, long at, int valid) {
    int bs = layout.blockSize();
    if (valid == bs) {
      return;
    }
    long headBytes = (long) bs * layout.headDim() * layout.elementBytes();
    long tailBytes = (long) (bs - valid) * layout.headDim() * layout.elementBytes();
    for (int i = 0; i < 2 * layout.kvHeads(); i++) {
      data.setZero(at + i * headBytes + (headBytes - tailBytes), tailBytes);
    }
  }

  private int validTokens(int block, int tokens) {
    return Math.min(layout.blockSize(), tokens - block * layout.blockSize());
  }

  private void checkLayer(int layer, int tokens) {
    if (layer < 0 || layer >= layout.layers()) {
      throw new IllegalArgumentException("layer " + layer + " is outside 0.." + (layout.layers() - 1));
    }
    if (tokens < 1) {
      throw new IllegalArgumentException("a layer must carry >= 1 token, got " + tokens);
    }
  }

  private void ensureOpen() {
    if (state == State.FAILED) {
      throw failure;
    }
    if (state != State.OPEN) {
      throw new IllegalStateException("KV transfer '" + id + "' is " + state.name().toLowerCase(java.util.Locale.ROOT));
    }
  }

  /** Cancels every stream that has not finished and frees the lanes. */
  private void abort() {
    for (Lane lane : lanes) {
      synchronized (lane) {
        if (!lane.ack.isDone()) {
          try {
            lane.listener.error(CallStatus.CANCELLED.withDescription("KV transfer '" + id + "' abandoned by the sender").toRuntimeException());
          } catch (RuntimeException e) {
            // the call is already gone
          }
        }
      }
    }
    for (Lane lane : lanes) {
      lane.ack.awaitQuietly(TimeUnit.SECONDS.toNanos(5)); // let gRPC release queued buffers
    }
    releaseLanes();
  }

  private void releaseLanes() {
    for (Lane lane : lanes) {
      synchronized (lane) {
        lane.root.close();
      }
    }
    lanes.clear();
  }

  /** One DoPut stream: its root, its listener and its acknowledgement. */
  private final class Lane {
    final VectorSchemaRoot root;
    final IntVector layers;
    final IntVector blocks;
    final IntVector tokens;
    final FixedSizeBinaryVector kv;
    final Ack ack = new Ack();
    final FlightClient.ClientStreamListener listener;

    Lane(FlightClient client) {
      root = VectorSchemaRoot.create(KvWire.schema(layout), allocator);
      try {
        layers = (IntVector) root.getVector(KvWire.LAYER);
        blocks = (IntVector) root.getVector(KvWire.BLOCK);
        tokens = (IntVector) root.getVector(KvWire.TOKENS);
        kv = (FixedSizeBinaryVector) root.getVector(KvWire.KV);
        long left = Math.max(1, deadlineNanos - System.nanoTime());
        listener = client.startPut(KvWire.descriptor(id), root, ack, CallOptions.timeout(left, TimeUnit.NANOSECONDS));
        listener.setUseZeroCopy(options.zeroCopy());
      } catch (RuntimeException e) {
        root.close();
        throw e;
      }
    }

    /** Fills the root with rows {@code [first, first + rows)} of {@code layer}. */
    void encode(int layer, int first, int rows, int transferTokens, BlockFiller filler) {
      layers.allocateNew(rows);
      blocks.allocateNew(rows);
      tokens.allocateNew(rows);
      long rowBytes = layout.layerBytes();
      try (ArrowBuf data = allocator.buffer(rows * rowBytes)) {
        for (int r = 0; r < rows; r++) {
          int block = first + r;
          layers.set(r, layer);
          blocks.set(r, block);
          tokens.set(r, validTokens(block, transferTokens));
          filler.fill(data, r * rowBytes, block);
        }
        // Hand the filled buffer to the vector as is: no zeroing pass over megabytes.
        kv.loadFieldBuffers(new ArrowFieldNode(rows, 0), List.of(allocator.getEmpty(), data));
      }
      root.setRowCount(rows);
    }

    /**
     * Waits until gRPC will take another message without buffering past its threshold. Flight's
     * own putNext spins on the CPU for this; here the thread parks between polls.
     */
    void awaitReady() {
      long park = 2_000;
      while (!listener.isReady()) {
        Throwable err = ack.error;
        if (err != null) {
          throw KvTransferException.of(id, err);
        }
        if (System.nanoTime() - deadlineNanos > 0) {
          throw new KvTransferException(FlightStatusCode.TIMED_OUT, "KV transfer '" + id + "' timed out waiting for the decode node to take data");
        }
        LockSupport.parkNanos(park);
        park = Math.min(park * 2, 200_000);
      }
      Throwable err = ack.error;
      if (err != null) {
        throw KvTransferException.of(id, err);
      }
    }
  }

  /** The DoPut's response side: the receiver's acknowledgement or its error. */
  private static final class Ack implements FlightClient.PutListener {
    private final CountDownLatch done = new CountDownLatch(1);
    volatile Throwable error;
    volatile int[] last;

    @Override
    public void onNext(PutResult val) {
      ArrowBuf m = val.getApplicationMetadata();
      if (m != null) {
        int[] a = KvWire.parseAck(m.nioBuffer());
        if (a != null) {
          last = a;
        }
      }
    }

    @Override
    public void onError(Throwable t) {
      error = t;
      done.countDown();
    }

    @Override
    public void onCompleted() {
      done.countDown();
    }

    @Override
    public boolean isCancelled() {
      return error != null;
    }

    boolean isDone() {
      return done.getCount() == 0;
    }

    @Override
    public void getResult() {
      await(Long.MAX_VALUE);
    }

    void await(long deadlineNanos) {
      try {
        long left = deadlineNanos == Long.MAX_VALUE ? Long.MAX_VALUE : deadlineNanos - System.nanoTime();
        if (!done.await(Math.max(0, left), TimeUnit.NANOSECONDS)) {
          throw new KvTransferException(FlightStatusCode.TIMED_OUT, "no acknowledgement from the decode node before the deadline");
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new KvTransferException(FlightStatusCode.CANCELLED, "interrupted while waiting for the decode node", e);
      }
      if (error != null) {
        throw (error instanceof RuntimeException r) ? r : new RuntimeException(error);
      }
    }

    void awaitQuietly(long nanos) {
      try {
        done.await(nanos, TimeUnit.NANOSECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
