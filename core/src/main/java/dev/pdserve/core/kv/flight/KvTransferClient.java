package dev.pdserve.core.kv.flight;

import com.google.common.base.Ticker;
import dev.pdserve.core.kv.KvEndpoint;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.kv.KvPusher;
import dev.pdserve.core.tls.TransportSecurity;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightGrpcUtils;
import org.apache.arrow.flight.Location;
import org.apache.arrow.flight.LocationSchemes;
import org.apache.arrow.memory.BufferAllocator;

/**
 * The prefill side of the KV transfer: pushes KV, layer by layer, into blocks a decode node
 * reserved ({@link KvTransferServer}). Holds Flight connections per decode node and reuses them
 * across transfers; {@link #open} starts one transfer.
 *
 * <p>Thread-safe. Each {@link OutgoingTransfer} may be fed from several threads (one per stream at
 * a time).
 */
public final class KvTransferClient implements KvPusher, AutoCloseable {
  /** How batches are handed to gRPC. Both produce the same Flight DoPut stream on the wire. */
  public enum SendPath {
    /** Flight's {@code FlightClient.startPut}: every location scheme. */
    FLIGHT_CLIENT,
    /**
     * Flight messages written by this package as direct Netty buffers over the rows' own Arrow
     * memory (pool blocks, for layers sent from a paged cache): no copy before the kernel's. {@code
     * grpc+tcp} locations only.
     */
    DIRECT
  }

  /** One connection to a decode node: its channel and a Flight client sharing it. */
  record Connection(ManagedChannel channel, FlightClient flight) {}

  /**
   * Transport tuning.
   *
   * @param streams DoPut streams per transfer; layer {@code l} goes on stream {@code l % streams},
   *     so layer groups travel in parallel
   * @param connections TCP connections (Flight clients) per decode node; streams are spread over
   *     them
   * @param maxBatchBytes largest record batch body; a layer bigger than this goes as several
   *     batches of whole blocks
   * @param flowControlWindow HTTP/2 receive window the client advertises; 0 keeps gRPC's default
   * @param zeroCopy on the FLIGHT_CLIENT path, let Flight hand Arrow buffers to gRPC without
   *     copying them (the DIRECT path never copies)
   * @param timeout deadline of one transfer, from {@link #open} to the acknowledgement
   * @param sendPath how batches are handed to gRPC
   * @param ticker the clock of the transfer deadline: a sender waiting for room, or {@link
   *     OutgoingTransfer#complete()} waiting for the acknowledgement, gives up once it has passed
   */
  public record Options(
      int streams,
      int connections,
      int maxBatchBytes,
      int flowControlWindow,
      boolean zeroCopy,
      Duration timeout,
      SendPath sendPath,
      Ticker ticker) {
    public static final Options DEFAULTS =
        new Options(
            1, 1, 1 << 20, 0, true, Duration.ofSeconds(60), SendPath.DIRECT, Ticker.systemTicker());

    public Options {
      if (streams < 1) {
        throw new IllegalArgumentException("streams must be >= 1, got " + streams);
      }
      if (connections < 1 || connections > streams) {
        throw new IllegalArgumentException(
            "connections must be in [1, streams=" + streams + "], got " + connections);
      }
      if (maxBatchBytes < 1) {
        throw new IllegalArgumentException("maxBatchBytes must be >= 1, got " + maxBatchBytes);
      }
      if (flowControlWindow < 0) {
        throw new IllegalArgumentException(
            "flowControlWindow must be >= 0, got " + flowControlWindow);
      }
      if (timeout == null || timeout.isNegative() || timeout.isZero()) {
        throw new IllegalArgumentException("timeout must be > 0, got " + timeout);
      }
      if (sendPath == null) {
        throw new IllegalArgumentException("sendPath must be set");
      }
      if (ticker == null) {
        throw new IllegalArgumentException("ticker must be set");
      }
    }

    public Options withStreams(int streams, int connections) {
      return new Options(
          streams,
          connections,
          maxBatchBytes,
          flowControlWindow,
          zeroCopy,
          timeout,
          sendPath,
          ticker);
    }

    public Options withMaxBatchBytes(int maxBatchBytes) {
      return new Options(
          streams,
          connections,
          maxBatchBytes,
          flowControlWindow,
          zeroCopy,
          timeout,
          sendPath,
          ticker);
    }

    public Options withFlowControlWindow(int flowControlWindow) {
      return new Options(
          streams,
          connections,
          maxBatchBytes,
          flowControlWindow,
          zeroCopy,
          timeout,
          sendPath,
          ticker);
    }

    public Options withZeroCopy(boolean zeroCopy) {
      return new Options(
          streams,
          connections,
          maxBatchBytes,
          flowControlWindow,
          zeroCopy,
          timeout,
          sendPath,
          ticker);
    }

    public Options withTimeout(Duration timeout) {
      return new Options(
          streams,
          connections,
          maxBatchBytes,
          flowControlWindow,
          zeroCopy,
          timeout,
          sendPath,
          ticker);
    }

    /** The transfer deadline is read from {@code ticker} (a test's fake ticker). */
    public Options withTicker(Ticker ticker) {
      return new Options(
          streams,
          connections,
          maxBatchBytes,
          flowControlWindow,
          zeroCopy,
          timeout,
          sendPath,
          ticker);
    }

    public Options withSendPath(SendPath sendPath) {
      return new Options(
          streams,
          connections,
          maxBatchBytes,
          flowControlWindow,
          zeroCopy,
          timeout,
          sendPath,
          ticker);
    }
  }

  private final BufferAllocator allocator;
  private final KvLayout layout;
  private final Options options;
  private final TransportSecurity security;
  private final Map<URI, Connection[]> clients = new HashMap<>();
  private boolean closed;

  public KvTransferClient(BufferAllocator parent, KvLayout layout) {
    this(parent, layout, Options.DEFAULTS);
  }

  /**
   * A client sending KV of {@code layout}, its batches allocated from a child of {@code parent}.
   */
  public KvTransferClient(BufferAllocator parent, KvLayout layout, Options options) {
    this(parent, layout, options, TransportSecurity.plaintext());
  }

  /**
   * As above, connecting as {@code security} says: with the cluster's mutual TLS, presenting the
   * node's certificate and accepting only decode nodes the cluster CA signed.
   */
  public KvTransferClient(
      BufferAllocator parent, KvLayout layout, Options options, TransportSecurity security) {
    this.layout = layout;
    this.options = options;
    this.security = security;
    this.allocator = parent.newChildAllocator("kv-transfer-client", 0, Long.MAX_VALUE);
  }

  public KvLayout layout() {
    return layout;
  }

  public Options options() {
    return options;
  }

  /**
   * Starts pushing transfer {@code transferId} to the decode node at {@code location}. The decode
   * node must have registered it ({@link KvTransferServer#expect}); otherwise the first send or
   * {@link OutgoingTransfer#complete()} fails with NOT_FOUND.
   */
  public OutgoingTransfer open(Location location, String transferId) {
    if (transferId == null || transferId.isEmpty()) {
      throw new IllegalArgumentException("transfer id must not be empty");
    }
    if (options.sendPath() == SendPath.DIRECT && !KvTransferServer.isGrpcTcp(location.getUri())) {
      throw new IllegalArgumentException(
          "the DIRECT send path reaches grpc+tcp or grpc+tls locations only, got "
              + location.getUri());
    }
    return new OutgoingTransfer(allocator, layout, options, connections(location), transferId);
  }

  /**
   * Starts pushing transfer {@code transferId} to the KV endpoint {@code target}, over TLS when
   * this client's credentials are.
   */
  @Override
  public OutgoingTransfer open(KvEndpoint target, String transferId) {
    return open(
        security.enabled()
            ? Location.forGrpcTls(target.host(), target.port())
            : Location.forGrpcInsecure(target.host(), target.port()),
        transferId);
  }

  private synchronized Connection[] connections(Location location) {
    if (closed) {
      throw new IllegalStateException("KV transfer client is closed");
    }
    Connection[] c = clients.get(location.getUri());
    if (c == null) {
      c = new Connection[options.connections()];
      try {
        for (int i = 0; i < c.length; i++) {
          c[i] = connect(location);
        }
      } catch (RuntimeException e) {
        closeAll(List.of(c));
        throw e;
      }
      clients.put(location.getUri(), c);
    }
    return c;
  }

  private Connection connect(Location location) {
    URI uri = location.getUri();
    if (!KvTransferServer.isGrpcTcp(uri)) {
      // Domain sockets: Flight's own builder (no transport tuning, FLIGHT_CLIENT only).
      return new Connection(null, FlightClient.builder(allocator, location).build());
    }
    if (LocationSchemes.GRPC_TLS.equals(uri.getScheme()) && !security.enabled()) {
      throw new IllegalArgumentException(
          "a grpc+tls KV endpoint needs a client with TLS credentials, got " + uri);
    }
    NettyChannelBuilder b =
        NettyChannelBuilder.forAddress(uri.getHost(), uri.getPort(), security.channelCredentials())
            .maxInboundMessageSize(1 << 20);
    if (options.flowControlWindow() > 0) {
      b.flowControlWindow(options.flowControlWindow());
    }
    ManagedChannel channel = b.build();
    return new Connection(
        channel, FlightGrpcUtils.createFlightClientWithSharedChannel(allocator, channel));
  }

  /** Closes every connection (waiting up to 5 s each). Close open transfers first. */
  @Override
  public void close() {
    List<Connection> all = new ArrayList<>();
    synchronized (this) {
      if (closed) {
        return;
      }
      closed = true;
      clients.values().forEach(cs -> all.addAll(List.of(cs)));
      clients.clear();
    }
    closeAll(all);
    allocator.close();
  }

  private static void closeAll(List<Connection> cs) {
    for (Connection c : cs) {
      if (c == null) {
        continue;
      }
      try {
        c.flight().close();
      } catch (Exception e) {
        // closing anyway
      }
      if (c.channel() != null) {
        c.channel().shutdown();
        try {
          if (!c.channel().awaitTermination(5, TimeUnit.SECONDS)) {
            c.channel().shutdownNow();
          }
        } catch (InterruptedException e) {
          c.channel().shutdownNow();
          Thread.currentThread().interrupt();
        }
      }
    }
  }
}
