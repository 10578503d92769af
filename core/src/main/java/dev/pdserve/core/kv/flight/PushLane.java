package dev.pdserve.core.kv.flight;

import com.google.common.base.Ticker;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.kv.PagedSequenceKv;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.Iterator;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.PutResult;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;

/**
 * One DoPut stream of an {@link OutgoingTransfer}. Sends and the half-close run under the lane's
 * lock; {@link #cancel} may come from any thread.
 */
abstract class PushLane {
  private static final int MAX_SPARES = 3;
  private static final TimeUnit NANOS = TimeUnit.NANOSECONDS;

  /** Longest single wait before the ticker is read again. */
  static final long WAIT_SLICE_NANOS = TimeUnit.MILLISECONDS.toNanos(50);

  /**
   * What every lane of one transfer shares.
   *
   * @param deadlineNanos when the transfer times out, as read from {@code ticker}
   */
  record Context(
      String id,
      KvLayout layout,
      BufferAllocator allocator,
      Ticker ticker,
      long deadlineNanos,
      BooleanSupplier aborted) {
    /** Nanoseconds left until the deadline (negative once it has passed). */
    long nanosLeft() {
      return deadlineNanos - ticker.read();
    }

    /** Positions of transfer block {@code block} that a transfer of {@code tokens} carries. */
    int validTokens(int block, int tokens) {
      return Math.min(layout.blockSize(), tokens - block * layout.blockSize());
    }

    /** Throws if the push was abandoned or its deadline passed while a sender waits for room. */
    void checkWaiting() {
      if (aborted.getAsBoolean()) {
        throw new KvTransferException(
            FlightStatusCode.CANCELLED, "KV transfer '" + id + "' was closed while sending");
      }
      if (nanosLeft() < 0) {
        throw new KvTransferException(
            FlightStatusCode.TIMED_OUT,
            "KV transfer '" + id + "' timed out waiting for the decode node to take data");
      }
    }
  }

  /** Writes one layer row ({@link KvLayout#layerBytes()} bytes) of transfer block {@code block}. */
  @FunctionalInterface
  interface RowFiller {
    void fill(ArrowBuf data, long at, int block);
  }

  final Context ctx;
  final Ack ack = new Ack();
  private final ArrayDeque<ArrowBuf> spares = new ArrayDeque<>();

  PushLane(Context ctx) {
    this.ctx = ctx;
  }

  /**
   * Sends rows {@code [first, first + rows)} of {@code layer} of a transfer of {@code tokens}
   * positions, waiting for room first. {@code paged}: a cache whose full blocks may be sent without
   * a copy, or null; {@code filler} writes any row that is copied.
   */
  abstract void send(
      int layer, int first, int rows, int tokens, PagedSequenceKv paged, RowFiller filler);

  /** Ends the stream from this side; the acknowledgement follows. */
  abstract void halfClose();

  abstract void cancel(String why);

  /** Frees the lane's buffers (gRPC keeps alive whatever it still sends). */
  void close() {
    spares.forEach(ArrowBuf::close);
    spares.clear();
  }

  /**
   * A body buffer of at least {@code bytes}: a spare that gRPC has finished sending (only this lane
   * still references it), else a new one. Reuse spares the page faults of fresh memory.
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
    ArrowBuf b = ctx.allocator().buffer(bytes);
    spares.addLast(b);
    while (spares.size() > MAX_SPARES) {
      spares.removeFirst().close();
    }
    return b;
  }

  /** A body buffer filled with rows {@code [first, first + rows)}. */
  ArrowBuf stage(int first, int rows, RowFiller filler) {
    long rowBytes = ctx.layout().layerBytes();
    ArrowBuf data = takeBuffer(rows * rowBytes);
    for (int r = 0; r < rows; r++) {
      filler.fill(data, r * rowBytes, first + r);
    }
    return data;
  }

  /** The DoPut's response side: the receiver's acknowledgement or its error. */
  static final class Ack implements FlightClient.PutListener {
    private final CountDownLatch done = new CountDownLatch(1);
    volatile Throwable error;

    /** The last acknowledgement: layers complete, layers expected. */
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
      try {
        done.await();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new KvTransferException(
            FlightStatusCode.CANCELLED, "interrupted while waiting for the decode node", e);
      }
      rethrow();
    }

    /**
     * Waits for the end of the call until the transfer's deadline, as its ticker tells; rethrows
     * its error.
     */
    void await(Context ctx) {
      try {
        while (!done.await(Math.min(Math.max(0, ctx.nanosLeft()), WAIT_SLICE_NANOS), NANOS)) {
          if (ctx.nanosLeft() <= 0) {
            throw new KvTransferException(
                FlightStatusCode.TIMED_OUT,
                "no acknowledgement from the decode node before the deadline");
          }
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new KvTransferException(
            FlightStatusCode.CANCELLED, "interrupted while waiting for the decode node", e);
      }
      rethrow();
    }

    private void rethrow() {
      if (error != null) {
        throw (error instanceof RuntimeException r) ? r : new RuntimeException(error);
      }
    }

    void awaitQuietly(long nanos) {
      try {
        done.await(nanos, NANOS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
