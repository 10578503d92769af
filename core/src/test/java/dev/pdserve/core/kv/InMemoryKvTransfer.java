package dev.pdserve.core.kv;

import java.util.Map;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.arrow.memory.ArrowBuf;

/**
 * KV transfer inside one JVM, for engine tests: the receiving side ({@link KvIntake}) of one node's
 * pool and the sending side ({@link KvPusher}) that copies a sequence's blocks straight into it.
 * Each sent layer is copied block by block at once; {@link KvPush#complete()} succeeds when every
 * layer of every expected position arrived. Counts what happened, so tests can assert on it.
 */
public final class InMemoryKvTransfer implements KvPusher, KvIntake {
  private final KvBlockPool target;
  private final KvEndpoint endpoint;
  private final Map<String, Expected> pending = new ConcurrentHashMap<>();
  private final AtomicInteger opened = new AtomicInteger();
  private final AtomicInteger completed = new AtomicInteger();
  private final AtomicInteger cancelled = new AtomicInteger();
  private volatile RuntimeException failNextOpen;

  /** Transfers into {@code target}, a node reachable (in name only) at {@code endpoint}. */
  public InMemoryKvTransfer(KvBlockPool target, KvEndpoint endpoint) {
    this.target = target;
    this.endpoint = endpoint;
  }

  public InMemoryKvTransfer(KvBlockPool target) {
    this(target, new KvEndpoint("in-memory", 1));
  }

  /** Where pushes to this receiver go. */
  public KvEndpoint endpoint() {
    return endpoint;
  }

  /** Pushes opened so far. */
  public int opened() {
    return opened.get();
  }

  /** Transfers that arrived whole. */
  public int completed() {
    return completed.get();
  }

  /** Transfers cancelled by the receiver. */
  public int cancelled() {
    return cancelled.get();
  }

  /** Transfers expected and not finished. */
  public int pending() {
    return pending.size();
  }

  /** The next {@link #open} throws {@code failure} (once). */
  public void failNextOpen(RuntimeException failure) {
    this.failNextOpen = failure;
  }

  @Override
  public ExpectedKv expect(String transferId, int[] blocks, int tokens) {
    if (target.layout().blocksFor(tokens) > blocks.length) {
      throw new IllegalArgumentException(
          blocks.length + " blocks cannot hold " + tokens + " positions");
    }
    Expected e = new Expected(transferId, blocks.clone(), tokens);
    if (pending.putIfAbsent(transferId, e) != null) {
      throw new IllegalStateException("transfer " + transferId + " is expected already");
    }
    return e;
  }

  @Override
  public boolean cancel(String transferId) {
    Expected e = pending.remove(transferId);
    if (e == null) {
      return false;
    }
    cancelled.incrementAndGet();
    e.done.completeExceptionally(
        new CancellationException("transfer " + transferId + " cancelled"));
    return true;
  }

  @Override
  public KvPush open(KvEndpoint to, String transferId) {
    RuntimeException f = failNextOpen;
    if (f != null) {
      failNextOpen = null;
      throw f;
    }
    if (!endpoint.equals(to)) {
      throw new IllegalStateException(
          "no KV endpoint at " + to + " (this one is " + endpoint + ")");
    }
    opened.incrementAndGet();
    return new Push(transferId);
  }

  private final class Expected implements ExpectedKv {
    final String id;
    final int[] blocks;
    final int tokens;
    final int[] positionsByLayer;
    final CompletableFuture<Expected> done = new CompletableFuture<>();
    long bytes;

    Expected(String id, int[] blocks, int tokens) {
      this.id = id;
      this.blocks = blocks;
      this.tokens = tokens;
      this.positionsByLayer = new int[target.layout().layers()];
    }

    @Override
    public String id() {
      return id;
    }

    @Override
    public CompletableFuture<Expected> completion() {
      return done;
    }

    @Override
    public synchronized int layersReceived() {
      int n = 0;
      for (int p : positionsByLayer) {
        n += p >= tokens ? 1 : 0;
      }
      return n;
    }

    @Override
    public synchronized long bytesReceived() {
      return bytes;
    }

    @Override
    public long receiveNanos() {
      return 0;
    }
  }

  private final class Push implements KvPush {
    final String id;
    long bytes;
    long firstSend;
    boolean closed;

    Push(String id) {
      this.id = id;
    }

    @Override
    public String id() {
      return id;
    }

    @Override
    public void sendLayer(int layer, PagedSequenceKv kv, int fromPosition, int toPosition) {
      Expected e = pending.get(id);
      if (e == null) {
        throw new IllegalStateException("transfer " + id + " is not expected (cancelled?)");
      }
      KvLayout layout = target.layout();
      if (!kv.pool().layout().equals(layout)) {
        // as the Flight receiver refuses a sender of another dtype or shape
        throw new IllegalArgumentException(
            "KV layout mismatch: the target pool has "
                + layout
                + ", the sequence's pool "
                + kv.pool().layout());
      }
      if (toPosition > e.tokens) {
        throw new IllegalArgumentException(
            "positions up to " + toPosition + " do not fit transfer " + id + " of " + e.tokens);
      }
      synchronized (this) {
        if (firstSend == 0) {
          firstSend = System.nanoTime();
        }
      }
      int first = fromPosition / layout.blockSize();
      int last = layout.blocksFor(toPosition);
      synchronized (e) {
        for (int b = first; b < last; b++) {
          try (ArrowBuf src = kv.pool().retainLayer(kv.block(b), layer)) {
            target.copyLayerIn(e.blocks[b], layer, src, 0);
          }
          e.bytes += layout.layerBytes();
        }
        if (fromPosition <= e.positionsByLayer[layer]) {
          e.positionsByLayer[layer] = Math.max(e.positionsByLayer[layer], toPosition);
        }
      }
      synchronized (this) {
        bytes += (long) (last - first) * layout.layerBytes();
      }
    }

    @Override
    public void complete() {
      Expected e = pending.get(id);
      if (e == null) {
        throw new IllegalStateException("transfer " + id + " is not expected (cancelled?)");
      }
      if (e.layersReceived() < target.layout().layers()) {
        throw new IllegalStateException(
            "transfer "
                + id
                + " has "
                + e.layersReceived()
                + " of "
                + target.layout().layers()
                + " layers");
      }
      pending.remove(id, e);
      completed.incrementAndGet();
      e.done.complete(e);
    }

    @Override
    public synchronized long bytesSent() {
      return bytes;
    }

    @Override
    public synchronized long firstSendNanos() {
      return firstSend;
    }

    @Override
    public synchronized void close() {
      closed = true;
    }
  }
}
