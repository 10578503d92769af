package dev.pdserve.core.kv.flight;

import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvLayout;
import io.grpc.netty.NettyServerBuilder;
import java.io.IOException;
import java.util.Arrays;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import org.apache.arrow.flight.CallStatus;
import org.apache.arrow.flight.FlightServer;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.FlightStream;
import org.apache.arrow.flight.Location;
import org.apache.arrow.flight.NoOpFlightProducer;
import org.apache.arrow.flight.PutResult;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.FixedSizeBinaryVector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The decode side of the KV transfer: an Arrow Flight server whose DoPut writes received KV
 * straight into blocks the decode node reserved. The node registers each transfer with {@link
 * #expect} before the prefill node pushes; the returned {@link IncomingTransfer} completes when
 * every layer has arrived.
 *
 * <p>Errors a sender gets: NOT_FOUND for a transfer id that is not expected here, CANCELLED for one
 * that was cancelled, INVALID_ARGUMENT for batches that do not fit the transfer (which also fails
 * it). Rows are idempotent: a row of a (layer, block) already held is skipped, so retried pushes
 * neither double-count nor rewrite. A push to a transfer that already completed is acknowledged
 * without writing anything (the blocks may belong to a running sequence by then).
 */
public final class KvTransferServer implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(KvTransferServer.class);
  private static final int FINISHED_REMEMBERED = 4096;

  private final KvBlockPool pool;
  private final KvLayout layout;
  private final BufferAllocator allocator;
  private final ExecutorService executor;
  private final FlightServer server;
  private final Map<String, IncomingTransfer> active = new ConcurrentHashMap<>();
  private final Map<String, IncomingTransfer.State> finished =
      new LinkedHashMap<>(16, 0.75f, false) {
        private static final long serialVersionUID = 1L;

        @Override
        protected boolean removeEldestEntry(Map.Entry<String, IncomingTransfer.State> eldest) {
          return size() > FINISHED_REMEMBERED;
        }
      };
  private volatile boolean closed;

  /** Tuning of the server's transport. {@code flowControlWindow} 0 keeps gRPC's default. */
  public record Options(int flowControlWindow, int maxMessageBytes) {
    public static final Options DEFAULTS = new Options(0, 256 << 20);

    public Options {
      if (flowControlWindow < 0) {
        throw new IllegalArgumentException("flowControlWindow must be >= 0, got " + flowControlWindow);
      }
      if (maxMessageBytes < 1 << 20) {
        throw new IllegalArgumentException("maxMessageBytes must be >= 1 MiB, got " + maxMessageBytes);
      }
    }
  }

  public KvTransferServer(BufferAllocator parent, KvBlockPool pool, Location location) {
    this(parent, pool, location, Options.DEFAULTS);
  }

  /**
   * A server for {@code pool} at {@code location} (e.g. {@code Location.forGrpcInsecure(host, 0)}),
   * receiving into a child of {@code parent}. Call {@link #start()}.
   */
  public KvTransferServer(BufferAllocator parent, KvBlockPool pool, Location location, Options options) {
    this.pool = pool;
    this.layout = pool.layout();
    this.allocator = parent.newChildAllocator("kv-transfer-server", 0, Long.MAX_VALUE);
    // gRPC runs its callbacks on the same executor as the DoPut handlers, which block on the
    // stream: a bounded pool can deadlock, so threads grow with concurrent pushes.
    this.executor = Executors.newCachedThreadPool(named("kv-transfer-server-"));
    Consumer<NettyServerBuilder> transport = b -> {
      if (options.flowControlWindow() > 0) {
        b.flowControlWindow(options.flowControlWindow());
      }
    };
    this.server =
        FlightServer.builder(allocator, location, new Producer())
            .executor(executor)
            .maxInboundMessageSize(options.maxMessageBytes())
            .transportHint("grpc.builderConsumer", transport)
            .build();
  }

  public KvTransferServer start() throws IOException {
    server.start();
    LOG.info("KV transfer server listening on {}", server.getLocation().getUri());
    return this;
  }

  public int port() {
    return server.getPort();
  }

  public Location location() {
    return server.getLocation();
  }

  public KvLayout layout() {
    return layout;
  }

  /**
   * Registers a transfer of {@code tokens} positions into {@code blocks} (allocated from this
   * server's pool, in position order; extra blocks past the prompt are left alone).
   *
   * @throws IllegalArgumentException if the blocks cannot hold the positions or are not allocated
   * @throws IllegalStateException if the id was used before or the server is closed
   */
  public IncomingTransfer expect(String transferId, int[] blocks, int tokens) {
    if (transferId == null || transferId.isEmpty()) {
      throw new IllegalArgumentException("transfer id must not be empty");
    }
    if (tokens < 1) {
      throw new IllegalArgumentException("transfer '" + transferId + "' must carry >= 1 token, got " + tokens);
    }
    int needed = layout.blocksFor(tokens);
    if (blocks.length < needed) {
      throw new IllegalArgumentException(
          "transfer '" + transferId + "' of " + tokens + " tokens needs " + needed + " blocks, got " + blocks.length);
    }
    BitSet seen = new BitSet();
    for (int b : Arrays.copyOf(blocks, needed)) {
      if (!pool.isAllocated(b) || seen.get(b)) {
        throw new IllegalArgumentException(
            "transfer '" + transferId + "': block " + b + " is not an allocated block of this pool, or is listed twice");
      }
      seen.set(b);
    }
    IncomingTransfer t = new IncomingTransfer(transferId, pool, Arrays.copyOf(blocks, needed), tokens);
    synchronized (finished) {
      if (closed) {
        throw new IllegalStateException("KV transfer server is closed");
      }
      if (finished.containsKey(transferId) || active.putIfAbsent(transferId, t) != null) {
        throw new IllegalStateException("transfer id '" + transferId + "' is already in use");
      }
    }
    t.completion().whenComplete((ok, err) -> retire(t));
    return t;
  }

  /**
   * Cancels an expected transfer: its future fails with a {@link
   * java.util.concurrent.CancellationException}, and once this returns nothing writes into its
   * blocks again, so the caller may free them. False if it was not pending.
   */
  public boolean cancel(String transferId) {
    IncomingTransfer t = active.get(transferId);
    return t != null && t.cancel();
  }

  /** Transfers registered and not yet finished. */
  public int pendingTransfers() {
    return active.size();
  }

  private void retire(IncomingTransfer t) {
    synchronized (finished) {
      active.remove(t.id(), t);
      finished.put(t.id(), t.state());
    }
  }

  private IncomingTransfer.State finishedState(String id) {
    synchronized (finished) {
      return finished.get(id);
    }
  }

  /** Stops serving; pending transfers fail with UNAVAILABLE. */
  @Override
  public void close() throws InterruptedException {
    synchronized (finished) {
      if (closed) {
        return;
      }
      closed = true;
    }
    for (IncomingTransfer t : active.values()) {
      t.fail(new KvTransferException(FlightStatusCode.UNAVAILABLE, "KV transfer '" + t.id() + "': the decode node's transfer server closed"));
    }
    try {
      server.shutdown();
      if (!server.awaitTermination(5, TimeUnit.SECONDS)) {
        LOG.warn("KV transfer server did not stop within 5 s; closing its calls");
      }
      server.close();
    } finally {
      executor.shutdownNow();
      executor.awaitTermination(5, TimeUnit.SECONDS);
      allocator.close();
    }
  }

  private static ThreadFactory named(String prefix) {
    AtomicInteger n = new AtomicInteger();
    return r -> {
      Thread t = new Thread(r, prefix + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }

  private final class Producer extends NoOpFlightProducer {
    @Override
    public Runnable acceptPut(CallContext context, FlightStream stream, StreamListener<PutResult> ack) {
      return () -> {
        String id = null;
        try {
          id = KvWire.transferId(stream.getDescriptor());
          receive(id, stream, ack);
        } catch (KvTransferException e) {
          ack.onError(e.toFlight());
        } catch (RuntimeException e) {
          LOG.error("KV transfer '{}' failed on the receiving side", id, e);
          ack.onError(CallStatus.INTERNAL.withDescription("KV transfer '" + id + "': " + e).withCause(e).toRuntimeException());
        }
      };
    }

    private void receive(String id, FlightStream stream, StreamListener<PutResult> ack) {
      if (id == null) {
        throw new KvTransferException(FlightStatusCode.INVALID_ARGUMENT, "a KV push's descriptor must be a command holding the transfer id");
      }
      IncomingTransfer t = active.get(id);
      if (t == null) {
        IncomingTransfer.State was = finishedState(id);
        if (was == IncomingTransfer.State.COMPLETE) {
          drain(stream); // a late retry: acknowledge, write nothing
          acknowledge(ack, layout.layers());
          return;
        }
        if (was == IncomingTransfer.State.CANCELLED) {
          throw new KvTransferException(FlightStatusCode.CANCELLED, "KV transfer '" + id + "' was cancelled by the decode node");
        }
        if (was == IncomingTransfer.State.FAILED) {
          throw new KvTransferException(FlightStatusCode.INVALID_ARGUMENT, "KV transfer '" + id + "' already failed on the decode node");
        }
        throw new KvTransferException(
            FlightStatusCode.NOT_FOUND, "no KV transfer '" + id + "' is expected on this node (never registered, or its decode request is gone)");
      }
      String bad = KvWire.mismatch(stream.getSchema(), layout);
      if (bad != null) {
        throw failed(t, bad);
      }
      VectorSchemaRoot root = stream.getRoot();
      IntVector layers = (IntVector) root.getVector(KvWire.LAYER);
      IntVector blocks = (IntVector) root.getVector(KvWire.BLOCK);
      IntVector tokens = (IntVector) root.getVector(KvWire.TOKENS);
      FixedSizeBinaryVector kv = (FixedSizeBinaryVector) root.getVector(KvWire.KV);
      long rowBytes = layout.layerBytes();
      while (stream.next()) {
        int rows = root.getRowCount();
        ArrowBuf data = kv.getDataBuffer();
        if (layers.getNullCount() + blocks.getNullCount() + tokens.getNullCount() + kv.getNullCount() > 0) {
          throw failed(t, "KV rows must not hold nulls");
        }
        if (data.capacity() < rows * rowBytes) {
          throw failed(t, "a KV batch of " + rows + " rows carries " + data.capacity() + " bytes, expected " + rows * rowBytes);
        }
        for (int r = 0; r < rows; r++) {
          int layer = layers.get(r);
          int block = blocks.get(r);
          int n = tokens.get(r);
          if (layer < 0 || layer >= layout.layers()) {
            throw failed(t, "layer " + layer + " is outside 0.." + (layout.layers() - 1));
          }
          if (block < 0 || block >= t.blockCount()) {
            throw failed(t, "block " + block + " is outside the transfer's 0.." + (t.blockCount() - 1) + " (" + t.tokens() + " tokens)");
          }
          if (n < 1 || n > t.expectedTokens(block)) {
            throw failed(t, "block " + block + " holds " + t.expectedTokens(block) + " of the transfer's " + t.tokens() + " tokens, a row claims " + n);
          }
          IncomingTransfer.State s = t.write(layer, block, n, data, r * rowBytes);
          if (s == IncomingTransfer.State.CANCELLED) {
            throw new KvTransferException(FlightStatusCode.CANCELLED, "KV transfer '" + id + "' was cancelled by the decode node");
          }
          if (s == IncomingTransfer.State.FAILED) {
            throw new KvTransferException(FlightStatusCode.INVALID_ARGUMENT, "KV transfer '" + id + "' already failed on the decode node");
          }
        }
      }
      acknowledge(ack, t.layersReceived());
    }

    private KvTransferException failed(IncomingTransfer t, String why) {
      KvTransferException e = new KvTransferException(FlightStatusCode.INVALID_ARGUMENT, "KV transfer '" + t.id() + "': " + why);
      t.fail(e);
      return e;
    }

    private void drain(FlightStream stream) {
      while (stream.next()) {
        // discard
      }
    }

    private void acknowledge(StreamListener<PutResult> ack, int layersDone) {
      byte[] msg = KvWire.ack(layersDone, layout.layers());
      try (ArrowBuf buf = allocator.buffer(msg.length)) {
        buf.writeBytes(msg);
        ack.onNext(PutResult.metadata(buf));
      }
      ack.onCompleted();
    }
  }
}
