package dev.pdserve.core.kv.flight;

import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.kv.PagedSequenceKv;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ClientResponseObserver;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.apache.arrow.flight.CallStatus;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.PutResult;
import org.apache.arrow.flight.impl.Flight;
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
 * <p>A send turns the layer into record batches of whole blocks, waits while the stream's gRPC
 * buffer is full (backpressure: the engine is held back rather than memory growing), queues the
 * batch and returns; the network write overlaps the next layer's compute. Layers sent from a
 * {@link PagedSequenceKv} over the {@link KvTransferClient.SendPath#DIRECT} path are not copied at
 * all: the sequence must keep its blocks until {@link #complete()} or {@link #close()} returns.
 */
public final class OutgoingTransfer implements AutoCloseable {
  private enum State {
    OPEN,
    COMPLETED,
    FAILED,
    CLOSED
  }

  private static final int MAX_SPARES = 3;

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
  private boolean released;

  OutgoingTransfer(BufferAllocator allocator, KvLayout layout, KvTransferClient.Options options, KvTransferClient.Connection[] conns, String id) {
    this.id = id;
    this.layout = layout;
    this.allocator = allocator;
    this.options = options;
    this.deadlineNanos = System.nanoTime() + options.timeout().toNanos();
    this.rowsPerBatch = Math.max(1, options.maxBatchBytes() / layout.layerBytes());
    try {
      for (int i = 0; i < options.streams(); i++) {
        KvTransferClient.Connection c = conns[i % conns.length];
        lanes.add(options.sendPath() == KvTransferClient.SendPath.DIRECT ? new DirectLane(c.channel()) : new FlightLane(c.flight()));
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
   * receives. The arrays are copied before this returns.
   */
  public void sendLayer(int layer, float[] k, float[] v, int offset, int stride, int tokens) {
    checkLayer(layer, tokens);
    int need = offset + (layout.kvHeads() - 1) * stride * layout.headDim() + tokens * layout.headDim();
    if (tokens > stride || k.length < need || v.length < need) {
      throw new IllegalArgumentException(
          "layer " + layer + ": " + tokens + " tokens at stride " + stride + " need " + need + " floats, got K " + k.length + ", V " + v.length);
    }
    send(layer, 0, layout.blocksFor(tokens), tokens, null, (data, at, block) -> fillFromArrays(data, at, block, k, v, offset, stride, tokens));
  }

  /** Sends positions {@code [0, tokens)} of {@code layer} out of a paged cache. */
  public void sendLayer(int layer, PagedSequenceKv kv, int tokens) {
    sendLayer(layer, kv, 0, tokens);
  }

  /**
   * Sends the blocks holding positions {@code [fromPosition, toPosition)} of {@code layer} out of a
   * paged cache (chunked prefill: a block sent again with more positions supersedes the earlier
   * copy on the receiver). Full blocks are not copied on the DIRECT path; a partly filled block is
   * copied, with its unused slots zeroed.
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
    send(layer, first, layout.blocksFor(toPosition), toPosition, kv, (data, at, block) -> {
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
          lane.halfClose();
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
    if (was != State.COMPLETED) {
      abort();
    }
  }

  // ---- sending ----

  @FunctionalInterface
  private interface BlockFiller {
    /** Writes {@link KvLayout#layerBytes()} bytes of transfer block {@code block} at {@code at}. */
    void fill(ArrowBuf data, long at, int block);
  }

  /** {@code paged}: the cache full blocks can be sent from without a copy, or null. */
  private void send(int layer, int firstBlock, int endBlock, int tokens, PagedSequenceKv paged, BlockFiller filler) {
    Lane lane = lanes.get(layer % lanes.size());
    synchronized (lane) {
      for (int b = firstBlock; b < endBlock; b += rowsPerBatch) {
        int rows = Math.min(rowsPerBatch, endBlock - b);
        synchronized (this) {
          ensureOpen();
        }
        try {
          lane.send(layer, b, rows, tokens, paged, filler);
        } catch (RuntimeException e) {
          KvTransferException f = KvTransferException.of(id, lane.ack.error != null ? lane.ack.error : e);
          synchronized (this) {
            if (state == State.OPEN) {
              state = State.FAILED;
              failure = f;
            }
          }
          throw f;
        }
        synchronized (this) {
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
      throw new IllegalStateException("KV transfer '" + id + "' is " + state.name().toLowerCase(Locale.ROOT));
    }
  }

  private KvTransferException timedOut() {
    return new KvTransferException(FlightStatusCode.TIMED_OUT, "KV transfer '" + id + "' timed out waiting for the decode node to take data");
  }

  /** Cancels every stream that has not finished, waits for them to end, and frees the lanes. */
  private void abort() {
    for (Lane lane : lanes) {
      synchronized (lane) {
        if (!lane.ack.isDone()) {
          try {
            lane.cancel("KV transfer '" + id + "' abandoned by the sender");
          } catch (RuntimeException e) {
            // the call is already gone
          }
        }
      }
    }
    for (Lane lane : lanes) {
      // Once a call has ended gRPC has dropped what it still had queued: buffers and pool blocks
      // it referenced are no longer read.
      lane.ack.awaitQuietly(TimeUnit.SECONDS.toNanos(5));
    }
    releaseLanes();
  }

  private synchronized void releaseLanes() {
    if (released) {
      return;
    }
    released = true;
    for (Lane lane : lanes) {
      synchronized (lane) {
        lane.close();
      }
    }
  }

  // ---- lanes: one DoPut stream each ----

  private abstract class Lane {
    final Ack ack = new Ack();
    private final ArrayDeque<ArrowBuf> spares = new ArrayDeque<>();

    /** Sends rows {@code [first, first + rows)} of {@code layer}, waiting for room first. */
    abstract void send(int layer, int first, int rows, int tokens, PagedSequenceKv paged, BlockFiller filler);

    abstract void halfClose();

    abstract void cancel(String why);

    void close() {
      spares.forEach(ArrowBuf::close);
      spares.clear();
    }

    /**
     * A body buffer of at least {@code bytes}: a spare that gRPC has finished sending (only this
     * lane still references it), else a new one. Reuse spares the page faults of fresh memory.
     */
    ArrowBuf takeBuffer(long bytes) {
      for (Iterator<ArrowBuf> it = spares.iterator(); it.hasNext(); ) {
        ArrowBuf b = it.next();
        if (b.getReferenceManager().getRefCount() == 1 && b.capacity() >= bytes) {
          it.remove();
          spares.addLast(b);
          return b;
        }
      }
      ArrowBuf b = allocator.buffer(bytes);
      spares.addLast(b);
      while (spares.size() > MAX_SPARES) {
        spares.removeFirst().close(); // gRPC keeps what it still sends alive
      }
      return b;
    }

    /** Fills a body buffer with rows {@code [first, first + rows)}. */
    ArrowBuf stage(int first, int rows, BlockFiller filler) {
      long rowBytes = layout.layerBytes();
      ArrowBuf data = takeBuffer(rows * rowBytes);
      for (int r = 0; r < rows; r++) {
        filler.fill(data, r * rowBytes, first + r);
      }
      return data;
    }
  }

  /** A lane over Flight's own client ({@link KvTransferClient.SendPath#FLIGHT_CLIENT}). */
  private final class FlightLane extends Lane {
    final VectorSchemaRoot root;
    final IntVector layers;
    final IntVector blocks;
    final IntVector tokens;
    final FixedSizeBinaryVector kv;
    final FlightClient.ClientStreamListener listener;

    FlightLane(FlightClient client) {
      root = VectorSchemaRoot.create(KvWire.schema(layout), allocator);
      try {
        layers = (IntVector) root.getVector(KvWire.LAYER);
        blocks = (IntVector) root.getVector(KvWire.BLOCK);
        tokens = (IntVector) root.getVector(KvWire.TOKENS);
        kv = (FixedSizeBinaryVector) root.getVector(KvWire.KV);
        long left = Math.max(1, deadlineNanos - System.nanoTime());
        listener = client.startPut(KvWire.descriptor(id), root, ack, org.apache.arrow.flight.CallOptions.timeout(left, TimeUnit.NANOSECONDS));
        listener.setUseZeroCopy(options.zeroCopy());
      } catch (RuntimeException e) {
        root.close();
        throw e;
      }
    }

    @Override
    void send(int layer, int first, int rows, int transferTokens, PagedSequenceKv paged, BlockFiller filler) {
      try {
        layers.allocateNew(rows);
        blocks.allocateNew(rows);
        tokens.allocateNew(rows);
        for (int r = 0; r < rows; r++) {
          layers.set(r, layer);
          blocks.set(r, first + r);
          tokens.set(r, validTokens(first + r, transferTokens));
        }
        // Hand the filled buffer to the vector as is: no zeroing pass over megabytes.
        kv.loadFieldBuffers(new ArrowFieldNode(rows, 0), List.of(allocator.getEmpty(), stage(first, rows, filler)));
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
        ack.throwIfFailed(id);
        if (System.nanoTime() - deadlineNanos > 0) {
          throw timedOut();
        }
        LockSupport.parkNanos(park);
        park = Math.min(park * 2, 200_000);
      }
      ack.throwIfFailed(id);
    }

    @Override
    void halfClose() {
      listener.completed();
    }

    @Override
    void cancel(String why) {
      listener.error(CallStatus.CANCELLED.withDescription(why).toRuntimeException());
    }

    @Override
    void close() {
      root.close();
      super.close();
    }
  }

  /** A lane speaking DoPut through {@link DirectPush} ({@link KvTransferClient.SendPath#DIRECT}). */
  private final class DirectLane extends Lane {
    private final ClientCallStreamObserver<DirectPush.Frame> requests;
    private final Object ready = new Object();

    DirectLane(ManagedChannel channel) {
      long left = Math.max(1, deadlineNanos - System.nanoTime());
      ClientCall<DirectPush.Frame, Flight.PutResult> call = channel.newCall(DirectPush.DO_PUT, CallOptions.DEFAULT.withDeadlineAfter(left, TimeUnit.NANOSECONDS));
      requests = (ClientCallStreamObserver<DirectPush.Frame>) ClientCalls.asyncBidiStreamingCall(call, new Responses());
      try {
        emit(DirectPush.schema(id, layout));
      } catch (RuntimeException e) {
        requests.cancel("KV transfer '" + id + "' could not start", e);
        throw e;
      }
    }

    @Override
    void send(int layer, int first, int rows, int transferTokens, PagedSequenceKv paged, BlockFiller filler) {
      int[] tokens = new int[rows];
      List<ArrowBuf> bodies = new ArrayList<>(rows);
      DirectPush.Frame frame;
      try {
        if (paged == null) {
          ArrowBuf staged = stage(first, rows, filler);
          staged.getReferenceManager().retain(); // released by the frame; the spare keeps its own
          bodies.add(staged.slice(0, rows * (long) layout.layerBytes()));
        }
        for (int r = 0; r < rows; r++) {
          int block = first + r;
          tokens[r] = validTokens(block, transferTokens);
          if (paged == null) {
            continue;
          }
          if (tokens[r] == layout.blockSize()) {
            bodies.add(paged.pool().retainLayer(paged.block(block), layer)); // no copy
          } else {
            ArrowBuf staged = stage(block, 1, filler); // a partial block: copy, zero the rest
            staged.getReferenceManager().retain();
            bodies.add(staged.slice(0, layout.layerBytes()));
          }
        }
        frame = DirectPush.batch(layout, layer, first, tokens, bodies);
      } catch (RuntimeException e) {
        bodies.forEach(ArrowBuf::close);
        throw e;
      }
      emit(frame);
    }

    private void emit(DirectPush.Frame frame) {
      try {
        awaitReady();
        requests.onNext(frame);
      } finally {
        frame.releaseUnsent();
      }
    }

    private void awaitReady() {
      synchronized (ready) {
        while (!requests.isReady()) {
          ack.throwIfFailed(id);
          long left = deadlineNanos - System.nanoTime();
          if (left <= 0) {
            throw timedOut();
          }
          try {
            ready.wait(Math.max(1, Math.min(TimeUnit.NANOSECONDS.toMillis(left), 100)));
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new KvTransferException(FlightStatusCode.CANCELLED, "KV transfer '" + id + "': interrupted while waiting to send", e);
          }
        }
      }
      ack.throwIfFailed(id);
    }

    private void wake() {
      synchronized (ready) {
        ready.notifyAll();
      }
    }

    @Override
    void halfClose() {
      requests.onCompleted();
    }

    @Override
    void cancel(String why) {
      requests.cancel(why, null);
    }

    private final class Responses implements ClientResponseObserver<DirectPush.Frame, Flight.PutResult> {
      @Override
      public void beforeStart(ClientCallStreamObserver<DirectPush.Frame> stream) {
        stream.setOnReadyHandler(DirectLane.this::wake);
      }

      @Override
      public void onNext(Flight.PutResult value) {
        ack.onAck(value.getAppMetadata().asReadOnlyByteBuffer());
      }

      @Override
      public void onError(Throwable t) {
        ack.onError(t);
        wake();
      }

      @Override
      public void onCompleted() {
        ack.onCompleted();
        wake();
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
        onAck(m.nioBuffer());
      }
    }

    void onAck(ByteBuffer b) {
      int[] a = KvWire.parseAck(b);
      if (a != null) {
        last = a;
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

    void throwIfFailed(String id) {
      Throwable err = error;
      if (err != null) {
        throw KvTransferException.of(id, err);
      }
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
