package dev.pdserve.core.grpc;

import com.google.common.base.Ticker;
import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.config.HostPort;
import dev.pdserve.core.config.NetworkSettings;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.tls.TransportSecurity;
import io.grpc.ClientInterceptor;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * Client channels to other nodes, one per {@code host:port}, created on first use and shared:
 * HTTP/2 secured as the settings' {@link TransportSecurity} says (mutual TLS with the node's
 * cluster certificate, or plaintext), keepalive pings so a dead peer is noticed on an idle channel,
 * a deliberate inbound size limit, and a bounded pool of named callback threads owned here.
 * Channels reconnect by themselves; {@link #evict} drops one for good (e.g. when a node leaves the
 * registry). Closing shuts every channel down.
 */
public final class Channels implements AutoCloseable {
  /**
   * @param keepAliveTime ping an idle connection this often (servers must permit it: {@link
   *     GrpcServer#PERMIT_KEEPALIVE})
   * @param keepAliveTimeout a ping unanswered this long fails the connection
   * @param maxInboundMessageBytes largest response accepted
   * @param threads callback threads shared by all channels
   * @param shutdownGrace how long {@link #close()} lets running calls finish before cancelling them
   * @param nodeId the node making the calls, carried in the callback threads' log context; null for
   *     none
   * @param ticker the clock of the shutdown grace period
   * @param security how connections are secured (plaintext by default)
   */
  public record Settings(
      Duration keepAliveTime,
      Duration keepAliveTimeout,
      int maxInboundMessageBytes,
      int threads,
      Duration shutdownGrace,
      String nodeId,
      Ticker ticker,
      TransportSecurity security) {
    public Settings {
      Objects.requireNonNull(ticker, "ticker");
      Objects.requireNonNull(security, "security");
    }

    /** Connections secured by {@code s} (e.g. the node's mutual TLS). */
    public Settings withSecurity(TransportSecurity s) {
      return new Settings(
          keepAliveTime,
          keepAliveTimeout,
          maxInboundMessageBytes,
          threads,
          shutdownGrace,
          nodeId,
          ticker,
          s);
    }

    public static Settings defaults() {
      return new Settings(
          Duration.ofSeconds(30),
          Duration.ofSeconds(10),
          NetworkSettings.DEFAULT_GRPC_MAX_INBOUND_BYTES,
          GrpcServer.DEFAULT_THREADS,
          Duration.ofSeconds(5),
          null,
          Ticker.systemTicker(),
          TransportSecurity.plaintext());
    }

    /** Defaults with the node's inbound size limit; callback threads log under its node id. */
    public static Settings forNode(NodeConfig config) {
      return defaults()
          .withMaxInboundMessageBytes(config.network().grpcMaxInboundBytes())
          .withNodeId(config.nodeId());
    }

    public Settings withMaxInboundMessageBytes(int bytes) {
      return new Settings(
          keepAliveTime, keepAliveTimeout, bytes, threads, shutdownGrace, nodeId, ticker, security);
    }

    public Settings withShutdownGrace(Duration grace) {
      return new Settings(
          keepAliveTime,
          keepAliveTimeout,
          maxInboundMessageBytes,
          threads,
          grace,
          nodeId,
          ticker,
          security);
    }

    /** Callback threads carry {@code id} in their log context (null: none). */
    public Settings withNodeId(String id) {
      return new Settings(
          keepAliveTime,
          keepAliveTimeout,
          maxInboundMessageBytes,
          threads,
          shutdownGrace,
          id,
          ticker,
          security);
    }

    /** The shutdown grace period is read from {@code t} (a test's fake ticker). */
    public Settings withTicker(Ticker t) {
      return new Settings(
          keepAliveTime,
          keepAliveTimeout,
          maxInboundMessageBytes,
          threads,
          shutdownGrace,
          nodeId,
          t,
          security);
    }
  }

  /** How long {@link #close()} waits for calls it cancelled to end (real time: a cleanup bound). */
  private static final Duration CANCELLED_CALLS_WAIT = Duration.ofSeconds(2);

  private final Settings settings;
  private final List<ClientInterceptor> interceptors;
  private final ThreadPoolExecutor executor;
  private final ConcurrentHashMap<String, ManagedChannel> channels = new ConcurrentHashMap<>();
  private volatile boolean closed;

  public Channels(Settings settings) {
    this(settings, List.of());
  }

  /**
   * Channels whose every call goes through {@code interceptors} (e.g. {@code
   * GrpcAuth.clusterCredentials}: the cluster token on calls to other nodes).
   */
  public Channels(Settings settings, List<ClientInterceptor> interceptors) {
    this.settings = settings;
    this.interceptors = List.copyOf(interceptors);
    this.executor =
        new ThreadPoolExecutor(
            settings.threads(),
            settings.threads(),
            0,
            TimeUnit.MILLISECONDS,
            new LinkedBlockingQueue<>(),
            new NamedThreadFactory("grpc-client", true, settings.nodeId()));
  }

  /** The shared channel to {@code address} ({@code host:port}). */
  public ManagedChannel get(String address) {
    return get(HostPort.parse(address));
  }

  public ManagedChannel get(HostPort address) {
    if (closed) {
      throw new IllegalStateException("channels are closed");
    }
    return channels.compute(
        address.toString(),
        (k, existing) -> existing != null && !existing.isShutdown() ? existing : open(address));
  }

  private ManagedChannel open(HostPort address) {
    return NettyChannelBuilder.forAddress(
            address.host(), address.port(), settings.security().channelCredentials())
        .executor(executor)
        .maxInboundMessageSize(settings.maxInboundMessageBytes())
        .keepAliveTime(settings.keepAliveTime().toMillis(), TimeUnit.MILLISECONDS)
        .keepAliveTimeout(settings.keepAliveTimeout().toMillis(), TimeUnit.MILLISECONDS)
        .keepAliveWithoutCalls(true)
        .intercept(RequestIds.clientInterceptor())
        .intercept(interceptors)
        .build();
  }

  /** Shuts the channel to {@code address} down (running calls finish) and forgets it. */
  public void evict(String address) {
    ManagedChannel ch = channels.remove(HostPort.parse(address).toString());
    if (ch != null) {
      ch.shutdown();
    }
  }

  /** Number of open channels. */
  public int size() {
    return channels.size();
  }

  /** Shuts every channel down, giving running calls the grace period before cancelling them. */
  @Override
  public void close() {
    Ticker ticker = settings.ticker();
    long deadline = ticker.read() + settings.shutdownGrace().toNanos();
    closed = true;
    List<ManagedChannel> all = new ArrayList<>(channels.values());
    channels.clear();
    all.forEach(ManagedChannel::shutdown);
    try {
      for (ManagedChannel ch : all) {
        if (!Termination.awaitUntil(ch::awaitTermination, ticker, deadline)) {
          ch.shutdownNow();
        }
      }
      // A call cancelled by shutdownNow ends on the callback pool: let the channels terminate
      // before that pool stops, or the call's end would be rejected and its caller never told.
      for (ManagedChannel ch : all) {
        ch.awaitTermination(CANCELLED_CALLS_WAIT.toMillis(), TimeUnit.MILLISECONDS);
      }
    } catch (InterruptedException e) {
      all.forEach(ManagedChannel::shutdownNow);
      Thread.currentThread().interrupt();
    }
    executor.shutdown();
  }
}
