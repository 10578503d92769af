package dev.pdserve.core.kv.flight;

import dev.pdserve.core.kv.ExpectedKv;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvLayout;
import java.time.Duration;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.arrow.flight.FlightStatusCode;

/**
 * A KV transfer a decode node expects: the blocks it reserved and how many prompt positions will
 * land in them. Completes once every layer of every block has arrived; fails when cancelled, when a
 * sender sends batches that do not fit it, or when the server closes. The blocks stay owned by the
 * caller of {@link KvTransferServer#expect} throughout: they are never freed here.
 */
public final class IncomingTransfer implements ExpectedKv {
  enum State {
    OPEN,
    COMPLETE,
    CANCELLED,
    FAILED
  }

  private final String id;
  private final KvBlockPool pool;
  private final KvLayout layout;
  private final int[] blocks;
  private final int tokens;
  private final int nBlocks;
  private final int[] received; // [layer][block]: positions of the block received so far
  private final int[] blocksDone; // [layer]: blocks with all their positions
  private final CompletableFuture<IncomingTransfer> done = new CompletableFuture<>();
  private final CompletableFuture<IncomingTransfer> view = done.copy();
  private int layersDone;
  private long bytesReceived;
  private long firstRowNanos;
  private long completedNanos;
  private State state = State.OPEN;

  private final Executor callbacks;

  IncomingTransfer(String id, KvBlockPool pool, int[] blocks, int tokens, Executor callbacks) {
    this.id = id;
    this.callbacks = callbacks;
    this.pool = pool;
    this.layout = pool.layout();
    this.tokens = tokens;
    this.nBlocks = layout.blocksFor(tokens);
    this.blocks = blocks.clone();
    this.received = new int[layout.layers() * nBlocks];
    this.blocksDone = new int[layout.layers()];
  }

  public String id() {
    return id;
  }

  /** The reserved blocks, in position order. */
  public int[] blocks() {
    return blocks.clone();
  }

  /** Positions the transfer fills. */
  public int tokens() {
    return tokens;
  }

  /** KV bytes stored so far (rows accepted; a re-sent row that adds nothing is not counted). */
  public synchronized long bytesReceived() {
    return bytesReceived;
  }

  /** Time from the first row stored to the last, in nanoseconds; 0 until complete. */
  public synchronized long receiveNanos() {
    return state == State.COMPLETE ? completedNanos - firstRowNanos : 0;
  }

  /** Layers whose every position has arrived. */
  public synchronized int layersReceived() {
    return layersDone;
  }

  /**
   * Completes with this transfer when every layer has arrived (on a server thread, never a
   * transport thread); completes exceptionally with a {@link CancellationException} after {@link
   * KvTransferServer#cancel} or with a {@link KvTransferException} on a failure. Cancelling the
   * returned future does not stop the transfer.
   */
  public CompletableFuture<IncomingTransfer> completion() {
    return view;
  }

  /** Waits for {@link #completion()}; rethrows its failure. */
  public IncomingTransfer await(Duration timeout) throws InterruptedException, TimeoutException {
    try {
      return done.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
    } catch (ExecutionException e) {
      if (e.getCause() instanceof RuntimeException r) {
        throw r;
      }
      throw new KvTransferException(
          FlightStatusCode.INTERNAL, "KV transfer '" + id + "' failed", e.getCause());
    }
  }

  /** Positions of {@code block} (an index into the transfer) that the transfer carries. */
  int expectedTokens(int block) {
    return Math.min(layout.blockSize(), tokens - block * layout.blockSize());
  }

  int blockCount() {
    return nBlocks;
  }

  synchronized State state() {
    return state;
  }

  /** What happened to a row. */
  enum Outcome {
    /** Copied into its block. */
    WRITTEN,
    /** Not copied: the transfer already holds as many positions of it, or has completed. */
    SKIPPED,
    CANCELLED,
    FAILED
  }

  /** Copies one row (one layer of one block) into pool block {@code poolBlock}. */
  @FunctionalInterface
  interface RowCopier {
    void copy(int poolBlock, int layer);
  }

  /**
   * Stores one row unless the transfer already holds as many positions of it: a retried or re-sent
   * row is not written twice. The copy runs under the transfer's lock, so once {@link #cancel} or
   * {@link #fail} returns nothing writes into the blocks any more.
   */
  Outcome write(int layer, int block, int rowTokens, RowCopier copier) {
    boolean completedNow = false;
    synchronized (this) {
      switch (state) {
        case CANCELLED:
          return Outcome.CANCELLED;
        case FAILED:
          return Outcome.FAILED;
        case COMPLETE:
          return Outcome.SKIPPED;
        default:
          break;
      }
      int i = layer * nBlocks + block;
      if (rowTokens <= received[i]) {
        return Outcome.SKIPPED;
      }
      copier.copy(blocks[block], layer);
      if (bytesReceived == 0) {
        firstRowNanos = System.nanoTime();
      }
      bytesReceived += layout.layerBytes();
      received[i] = rowTokens;
      if (rowTokens == expectedTokens(block)
          && ++blocksDone[layer] == nBlocks
          && ++layersDone == layout.layers()) {
        state = State.COMPLETE;
        completedNanos = System.nanoTime();
        completedNow = true;
      }
    }
    if (completedNow) {
      // Not on the receiving thread (it may be a transport thread): callers chain work on this.
      try {
        done.completeAsync(() -> this, callbacks);
      } catch (RejectedExecutionException e) {
        done.complete(this); // the server is closing
      }
    }
    return Outcome.WRITTEN;
  }

  /** Stops the transfer; true if it was still open. */
  boolean cancel() {
    synchronized (this) {
      if (state != State.OPEN) {
        return false;
      }
      state = State.CANCELLED;
    }
    done.completeExceptionally(new CancellationException("KV transfer '" + id + "' was cancelled"));
    return true;
  }

  /** Fails the transfer; true if it was still open. */
  boolean fail(KvTransferException cause) {
    synchronized (this) {
      if (state != State.OPEN) {
        return false;
      }
      state = State.FAILED;
    }
    done.completeExceptionally(cause);
    return true;
  }
}
