package dev.pdserve.core.kv.flight;

import dev.pdserve.core.kv.KvElements;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.kv.KvPush;
import dev.pdserve.core.kv.PagedSequenceKv;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;

/**
 * One KV push in progress: send each layer as soon as it exists ({@link #sendLayer}), then {@link
 * #complete()} to wait for the decode node's acknowledgement. {@link #close()} releases everything
 * exactly once and cancels the push if it did not complete.
 *
 * <p>A send turns the layer into record batches of whole blocks, waits while the stream's gRPC
 * buffer is full (backpressure: the engine is held back rather than memory growing), queues the
 * batch and returns; the network write overlaps the next layer's compute. Layers sent from a {@link
 * PagedSequenceKv} over the {@link KvTransferClient.SendPath#DIRECT} path are not copied at all:
 * the sequence must keep its blocks until {@link #complete()} or {@link #close()} returns.
 */
public final class OutgoingTransfer implements KvPush {
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
  private final PushLane.Context ctx;
  private final List<PushLane> lanes = new ArrayList<>();
  private final int rowsPerBatch;
  private State state = State.OPEN;
  private KvTransferException failure;
  private long bytesSent;
  private long firstSendNanos;
  private boolean released;
  private volatile boolean aborted; // tells senders waiting for room to give up

  OutgoingTransfer(
      BufferAllocator allocator,
      KvLayout layout,
      KvTransferClient.Options options,
      KvTransferClient.Connection[] conns,
      String id) {
    this.id = id;
    this.layout = layout;
    this.allocator = allocator;
    this.options = options;
    this.rowsPerBatch = Math.max(1, options.maxBatchBytes() / layout.layerBytes());
    this.ctx =
        new PushLane.Context(
            id,
            layout,
            allocator,
            options.ticker(),
            options.ticker().read() + options.timeout().toNanos(),
            () -> aborted);
    try {
      for (int i = 0; i < options.streams(); i++) {
        KvTransferClient.Connection c = conns[i % conns.length];
        lanes.add(
            options.sendPath() == KvTransferClient.SendPath.DIRECT
                ? new DirectPushLane(ctx, c.channel())
                : new FlightPushLane(ctx, c.flight(), options.zeroCopy()));
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
   * receives — narrowed to the layout's dtype. The arrays are copied before this returns.
   */
  public void sendLayer(int layer, float[] k, float[] v, int offset, int stride, int tokens) {
    checkLayer(layer, tokens);
    int need =
        offset + (layout.kvHeads() - 1) * stride * layout.headDim() + tokens * layout.headDim();
    if (tokens > stride || k.length < need || v.length < need) {
      throw new IllegalArgumentException(
          "layer "
              + layer
              + ": "
              + tokens
              + " tokens at stride "
              + stride
              + " need "
              + need
              + " floats, got K "
              + k.length
              + ", V "
              + v.length);
    }
    send(
        layer,
        0,
        layout.blocksFor(tokens),
        tokens,
        null,
        (data, at, block) -> fillFromArrays(data, at, block, k, v, offset, stride, tokens));
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
          "positions "
              + fromPosition
              + ".."
              + toPosition
              + " are not within the cache's "
              + kv.capacity());
    }
    if (!kv.pool().layout().equals(layout)) {
      throw new IllegalArgumentException(
          "the cache's layout " + kv.pool().layout() + " is not this client's " + layout);
    }
    int first = fromPosition / layout.blockSize();
    send(
        layer,
        first,
        layout.blocksFor(toPosition),
        toPosition,
        kv,
        (data, at, block) -> {
          kv.pool().copyLayerOut(kv.block(block), layer, data, at);
          zeroTail(data, at, validTokens(block, toPosition));
        });
  }

  /**
   * Ends every stream and waits until the decode node acknowledged them and holds every layer.
   *
   * @throws KvTransferException with the receiver's status if the push failed, or INTERNAL if the
   *     receiver still misses layers after every stream ended
   */
  public void complete() {
    synchronized (this) {
      ensureOpen();
      state = State.COMPLETED;
    }
    try {
      for (PushLane lane : lanes) {
        synchronized (lane) {
          lane.halfClose();
        }
      }
      int[] best = null;
      for (PushLane lane : lanes) {
        lane.ack.await(ctx);
        int[] a = lane.ack.last;
        if (a != null && (best == null || a[0] > best[0])) {
          best = a;
        }
      }
      if (best == null || best[0] != best[1]) {
        throw new KvTransferException(
            FlightStatusCode.INTERNAL,
            "KV transfer '"
                + id
                + "': the decode node holds "
                + (best == null ? "?" : best[0])
                + " of "
                + layout.layers()
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

  /** {@code paged}: the cache full blocks can be sent from without a copy, or null. */
  private void send(
      int layer,
      int firstBlock,
      int endBlock,
      int tokens,
      PagedSequenceKv paged,
      PushLane.RowFiller filler) {
    PushLane lane = lanes.get(layer % lanes.size());
    synchronized (lane) {
      for (int b = firstBlock; b < endBlock; b += rowsPerBatch) {
        int rows = Math.min(rowsPerBatch, endBlock - b);
        synchronized (this) {
          ensureOpen();
          if (firstSendNanos == 0) {
            firstSendNanos = System.nanoTime();
          }
        }
        try {
          lane.send(layer, b, rows, tokens, paged, filler);
        } catch (RuntimeException e) {
          KvTransferException f =
              KvTransferException.of(id, lane.ack.error != null ? lane.ack.error : e);
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

  private void fillFromArrays(
      ArrowBuf data, long at, int block, float[] k, float[] v, int offset, int stride, int tokens) {
    int bs = layout.blockSize();
    int hd = layout.headDim();
    int valid = validTokens(block, tokens);
    KvElements row = KvElements.over(data.nioBuffer(at, layout.layerBytes()), layout.dtype());
    for (int half = 0; half < 2; half++) {
      float[] src = half == 0 ? k : v;
      for (int h = 0; h < layout.kvHeads(); h++) {
        int dst = (half * layout.kvHeads() + h) * bs * hd;
        row.put(dst, src, offset + (h * stride + block * bs) * hd, valid * hd);
      }
    }
    zeroTail(data, at, valid);
  }

  /**
   * Zeroes slots {@code [valid, blockSize)} of every head of a layer row: no stale KV on the wire.
   */
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
      throw new IllegalArgumentException(
          "layer " + layer + " is outside 0.." + (layout.layers() - 1));
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
      throw new IllegalStateException(
          "KV transfer '" + id + "' is " + state.name().toLowerCase(Locale.ROOT));
    }
  }

  /** Cancels every stream that has not finished, waits for them to end, and frees the lanes. */
  private void abort() {
    aborted = true;
    for (PushLane lane : lanes) {
      if (!lane.ack.isDone()) {
        try {
          lane.cancel("KV transfer '" + id + "' abandoned by the sender");
        } catch (RuntimeException e) {
          // the call is already gone
        }
      }
    }
    for (PushLane lane : lanes) {
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
    for (PushLane lane : lanes) {
      synchronized (lane) {
        lane.close();
      }
    }
  }
}
