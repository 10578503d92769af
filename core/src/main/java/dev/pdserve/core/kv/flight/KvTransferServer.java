package dev.pdserve.core.kv.flight;

import com.google.common.util.concurrent.MoreExecutors;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvIntake;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.tls.TransportSecurity;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallExecutorSupplier;
import io.grpc.netty.NettyServerBuilder;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import org.apache.arrow.flight.FlightServer;
import org.apache.arrow.flight.Location;
import org.apache.arrow.flight.LocationSchemes;
import org.apache.arrow.flight.impl.FlightServiceGrpc;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The decode side of the KV transfer: an Arrow Flight server whose DoPut writes received KV
 * straight into blocks the decode node reserved. The node registers each transfer with {@link
 * #expect} before the prefill node pushes; the returned {@link IncomingTransfer} completes when
 * every layer has arrived. Wire format: see the package documentation.
 *
 * <p>Errors a sender gets: NOT_FOUND for a transfer id that is not expected here, CANCELLED for one
 * that was cancelled, INVALID_ARGUMENT for batches that do not fit the transfer (which also fails
 * it). Rows are idempotent: a row of a (layer, block) already held is skipped, so retried pushes
 * neither double-count nor rewrite. A push to a transfer that already completed is acknowledged
 * without writing anything (its blocks may belong to a running sequence by then).
 */
public final class KvTransferServer implements KvIntake, AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(KvTransferServer.class);

  /** How DoPut bodies reach the pool. Both accept the same wire format from any Flight client. */
  public enum ReceivePath {
    /**
     * Flight's {@code FlightServer} and {@code FlightProducer.acceptPut}: every batch is read into
     * Arrow memory (arrow-java 19 goes through a heap array on the way), then each row is copied
     * into its block. Works for every Flight location scheme.
     */
    FLIGHT_STREAM,
    /**
     * The same Flight service, but DoPut parses each FlightData message itself and copies rows from
     * gRPC's receive buffers into their blocks: one copy instead of three. {@code grpc+tcp}
     * locations only.
     */
    DIRECT
  }

  /**
   * Server tuning.
   *
   * @param receivePath how bodies reach the pool
   * @param flowControlWindow HTTP/2 receive window per stream and connection; 0 (the default,
   *     measured best with 1 MiB batches) keeps gRPC's default (1 MiB)
   * @param maxMessageBytes largest FlightData message accepted (a sender's batch plus headers)
   */
  public record Options(ReceivePath receivePath, int flowControlWindow, int maxMessageBytes) {
    public static final Options DEFAULTS = new Options(ReceivePath.DIRECT, 0, 64 << 20);

    public Options {
      if (receivePath == null) {
        throw new IllegalArgumentException("receivePath must be set");
      }
      if (flowControlWindow < 0) {
        throw new IllegalArgumentException(
            "flowControlWindow must be >= 0, got " + flowControlWindow);
      }
      if (maxMessageBytes < 1 << 20) {
        throw new IllegalArgumentException(
            "maxMessageBytes must be >= 1 MiB, got " + maxMessageBytes);
      }
    }

    public Options withReceivePath(ReceivePath path) {
      return new Options(path, flowControlWindow, maxMessageBytes);
    }

    public Options withFlowControlWindow(int window) {
      return new Options(receivePath, window, maxMessageBytes);
    }
  }

  private final KvReceiver receiver;
  private final BufferAllocator allocator;
  private final ExecutorService executor;
  private final Location requested;
  private final TransportSecurity security;
  private final FlightServer flightServer; // FLIGHT_STREAM
  private final Server grpcServer; // DIRECT
  private boolean closed;

  public KvTransferServer(BufferAllocator parent, KvBlockPool pool, Location location) {
    this(parent, pool, location, Options.DEFAULTS);
  }

  /**
   * A plaintext server for {@code pool} at {@code location} (e.g. {@code
   * Location.forGrpcInsecure(host, 0)}), receiving into a child of {@code parent}. Call {@link
   * #start()}.
   */
  public KvTransferServer(
      BufferAllocator parent, KvBlockPool pool, Location location, Options options) {
    this(parent, pool, location, options, TransportSecurity.plaintext());
  }

  /**
   * As above, secured by {@code security}: with the cluster's mutual TLS, only a sender holding a
   * certificate the cluster CA signed can connect, and every call is checked for it again ({@link
   * TransportSecurity#peerCertificateRequired()}) before DoPut sees a byte; a transfer id alone
   * grants nothing. {@code location} is a {@code grpc+tcp} or {@code grpc+tls} address to bind; the
   * credentials, not the scheme, decide.
   */
  public KvTransferServer(
      BufferAllocator parent,
      KvBlockPool pool,
      Location location,
      Options options,
      TransportSecurity security) {
    this.requested = location;
    this.security = security;
    URI uri = location.getUri();
    if (options.receivePath() == ReceivePath.DIRECT && !isGrpcTcp(uri)) {
      throw new IllegalArgumentException(
          "the DIRECT receive path serves grpc+tcp or grpc+tls locations only, got " + uri);
    }
    if (security.enabled() && !isGrpcTcp(uri)) {
      throw new IllegalArgumentException(
          "TLS credentials apply to grpc+tcp or grpc+tls locations only, got " + uri);
    }
    this.allocator = parent.newChildAllocator("kv-transfer-server", 0, Long.MAX_VALUE);
    // gRPC runs its callbacks on the same executor as Flight's handlers, which may block on their
    // streams: a bounded pool can deadlock, so threads follow the number of concurrent calls.
    this.executor = Executors.newCachedThreadPool(named("kv-transfer-server-"));
    this.receiver = new KvReceiver(pool, executor);
    KvPutProducer producer = new KvPutProducer(receiver, allocator);
    Consumer<NettyServerBuilder> tune =
        b -> {
          if (options.flowControlWindow() > 0) {
            b.flowControlWindow(options.flowControlWindow());
          }
          b.intercept(security.peerCertificateRequired());
        };
    if (options.receivePath() == ReceivePath.FLIGHT_STREAM) {
      this.grpcServer = null;
      Location bind =
          LocationSchemes.GRPC_TLS.equals(uri.getScheme())
              ? Location.forGrpcInsecure(uri.getHost(), uri.getPort())
              : location;
      Consumer<NettyServerBuilder> flightTune =
          b -> {
            // Flight applies this after its own setup: the reloading credentials replace its TLS.
            security.grpcServerContext().ifPresent(b::sslContext);
            tune.accept(b);
          };
      this.flightServer =
          FlightServer.builder(allocator, bind, producer)
              .executor(executor)
              .maxInboundMessageSize(options.maxMessageBytes())
              .transportHint("grpc.builderConsumer", flightTune)
              .build();
    } else {
      this.flightServer = null;
      String doPut = FlightServiceGrpc.getDoPutMethod().getFullMethodName();
      NettyServerBuilder b =
          NettyServerBuilder.forAddress(
                  new InetSocketAddress(uri.getHost(), uri.getPort()), security.serverCredentials())
              .executor(executor)
              // The DIRECT DoPut never blocks (it copies rows and returns), so it runs on the
              // transport thread that read the bytes: no hand-off, the bytes are still in cache.
              .callExecutor(
                  new ServerCallExecutorSupplier() {
                    @Override
                    public <ReqT, RespT> Executor getExecutor(
                        ServerCall<ReqT, RespT> call, Metadata headers) {
                      return doPut.equals(call.getMethodDescriptor().getFullMethodName())
                          ? MoreExecutors.directExecutor()
                          : null;
                    }
                  })
              .maxInboundMessageSize(options.maxMessageBytes())
              .addService(DirectPut.service(allocator, producer, executor, receiver));
      tune.accept(b);
      this.grpcServer = b.build();
    }
  }

  public KvTransferServer start() throws IOException {
    if (flightServer != null) {
      flightServer.start();
    } else {
      grpcServer.start();
    }
    LOG.info("KV transfer server listening on {}", location().getUri());
    return this;
  }

  public int port() {
    return flightServer != null ? flightServer.getPort() : grpcServer.getPort();
  }

  /** Where senders reach this server (with the bound port; {@code grpc+tls} with TLS). */
  public Location location() {
    if (!isGrpcTcp(requested.getUri())) {
      return flightServer.getLocation(); // a domain socket
    }
    String host = requested.getUri().getHost();
    return security.enabled()
        ? Location.forGrpcTls(host, port())
        : Location.forGrpcInsecure(host, port());
  }

  /** Whether senders must use TLS (and, with a cluster CA, present a cluster certificate). */
  public TransportSecurity security() {
    return security;
  }

  static boolean isGrpcTcp(URI uri) {
    return LocationSchemes.GRPC_INSECURE.equals(uri.getScheme())
        || LocationSchemes.GRPC_TLS.equals(uri.getScheme());
  }

  public KvLayout layout() {
    return receiver.layout();
  }

  /**
   * Registers a transfer of {@code tokens} positions into {@code blocks} (allocated from this
   * server's pool, in position order; blocks past the prompt's are left alone). The blocks stay the
   * caller's: nothing here frees them.
   *
   * @throws IllegalArgumentException if the blocks cannot hold the positions or are not allocated
   * @throws IllegalStateException if the id was used before or the server is closed
   */
  public IncomingTransfer expect(String transferId, int[] blocks, int tokens) {
    return receiver.expect(transferId, blocks, tokens);
  }

  /**
   * Cancels an expected transfer: its future fails with a {@link
   * java.util.concurrent.CancellationException}, and once this returns nothing writes into its
   * blocks again, so the caller may free them. False if it was not pending.
   */
  public boolean cancel(String transferId) {
    return receiver.cancel(transferId);
  }

  /** Transfers registered and not yet finished. */
  public int pendingTransfers() {
    return receiver.pending();
  }

  /**
   * Stops serving (waiting up to 5 s for calls in flight); pending transfers fail with UNAVAILABLE.
   */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    receiver.closeAll();
    try {
      if (flightServer != null) {
        flightServer.shutdown();
        if (!flightServer.awaitTermination(5, TimeUnit.SECONDS)) {
          LOG.warn("KV transfer server did not stop within 5 s; closing its calls");
        }
        flightServer.close();
      } else {
        grpcServer.shutdown();
        if (!grpcServer.awaitTermination(5, TimeUnit.SECONDS)) {
          LOG.warn("KV transfer server did not stop within 5 s; closing its calls");
          grpcServer.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
      }
      executor.shutdownNow();
      executor.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      if (grpcServer != null) {
        grpcServer.shutdownNow();
      }
      executor.shutdownNow();
    } finally {
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
}
