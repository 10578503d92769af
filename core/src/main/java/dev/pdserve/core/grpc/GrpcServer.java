package dev.pdserve.core.grpc;

import com.google.common.base.Ticker;
import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.config.NetworkSettings;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.tls.TransportSecurity;
import io.grpc.BindableService;
import io.grpc.InsecureServerCredentials;
import io.grpc.Server;
import io.grpc.ServerBuilder;
import io.grpc.ServerInterceptor;
import io.grpc.ServerServiceDefinition;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionService;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * A gRPC server as a testable object: built from a {@link ServerBuilder} (Netty on {@code
 * host:port}, port 0 in tests; or in-process), with grpc.health.v1 health (one service name per
 * role, e.g. {@code pdserve.prefill}, plus the overall {@code ""}), server reflection (v1 and
 * v1alpha), a bounded pool of named handler threads (never {@code directExecutor()}: a handler
 * waiting on {@code isReady()} would stall the transport), and a deliberate inbound message size.
 * {@link #close()} reports NOT_SERVING, stops taking calls, lets running calls finish within the
 * grace period (read from the builder's {@link Builder#ticker ticker}), then cancels the rest.
 *
 * <p>Optionally a second, plaintext Netty server on a {@link Builder#healthPort health port}
 * serving only grpc.health.v1 from the same statuses: Kubernetes gRPC probes cannot speak TLS, so a
 * node whose gRPC port requires mutual TLS is probed there. It carries the same interceptors (with
 * API keys on, health stays open only while {@code pdserve.auth.health-open} is) and nothing else.
 */
public final class GrpcServer implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(GrpcServer.class);

  public static final int DEFAULT_THREADS =
      Math.max(4, 2 * Runtime.getRuntime().availableProcessors());
  public static final Duration DEFAULT_SHUTDOWN_GRACE = Duration.ofSeconds(10);

  /** Keepalive pings clients may send this often (our {@link Channels} ping every 30 s). */
  public static final Duration PERMIT_KEEPALIVE = Duration.ofSeconds(10);

  private final String name;
  private final Server server;
  private final Server healthServer; // null: health only on the main port
  private final HealthStatusManager health;
  private final Map<String, Boolean> healthServices;
  private final ThreadPoolExecutor executor;
  private final Duration shutdownGrace;
  private final Ticker ticker;
  private volatile boolean closed;
  private volatile int port = -1;
  private volatile int healthPort = -1;

  private GrpcServer(Builder b) {
    this.name = b.name;
    this.health = new HealthStatusManager();
    this.healthServices = Collections.unmodifiableMap(new LinkedHashMap<>(b.healthServices));
    this.shutdownGrace = b.shutdownGrace;
    this.ticker = b.ticker;
    this.executor =
        new ThreadPoolExecutor(
            b.threads,
            b.threads,
            0,
            TimeUnit.MILLISECONDS,
            new LinkedBlockingQueue<>(),
            new NamedThreadFactory("grpc-" + name, true, b.nodeId));
    ServerBuilder<?> sb = b.serverBuilder;
    sb.executor(executor).maxInboundMessageSize(b.maxInboundMessageBytes);
    sb.intercept(RequestIds.serverInterceptor());
    // Added last, so they run first: a refused call never reaches the request-id context.
    b.interceptors.forEach(sb::intercept);
    sb.addService(health.getHealthService());
    sb.addService(ProtoReflectionServiceV1.newInstance());
    sb.addService(legacyReflection());
    b.services.forEach(sb::addService);
    this.server = sb.build();
    if (b.healthPort == null) {
      this.healthServer = null;
    } else {
      if (b.host == null) {
        throw new IllegalStateException("a health port needs a Netty server (forAddress/forNode)");
      }
      NettyServerBuilder hb =
          NettyServerBuilder.forAddress(
              new InetSocketAddress(b.host, b.healthPort), InsecureServerCredentials.create());
      hb.executor(executor).maxInboundMessageSize(64 << 10);
      b.interceptors.forEach(hb::intercept);
      hb.addService(health.getHealthService());
      this.healthServer = hb.build();
    }
  }

  @SuppressWarnings("deprecation")
  private static BindableService legacyReflection() {
    // v1alpha: what older grpcurl and GUI clients still ask for.
    return ProtoReflectionService.newInstance();
  }

  /** A plaintext Netty server on {@code host:port} (0 = any free port). */
  public static Builder forAddress(String host, int port) {
    return forAddress(host, port, TransportSecurity.plaintext());
  }

  /**
   * A Netty server on {@code host:port} (0 = any free port) secured by {@code security} (mutual TLS
   * between nodes, TLS on a public API, or plaintext).
   */
  public static Builder forAddress(String host, int port, TransportSecurity security) {
    NettyServerBuilder nb =
        NettyServerBuilder.forAddress(
                new InetSocketAddress(host, port), security.serverCredentials())
            .permitKeepAliveTime(PERMIT_KEEPALIVE.toMillis(), TimeUnit.MILLISECONDS)
            .permitKeepAliveWithoutCalls(true);
    Builder b = new Builder(nb).name(host + ":" + port);
    b.host = host;
    return b;
  }

  /**
   * A Netty server for a node: its bind host and gRPC port, its inbound size limit, health reported
   * under its role's service name ({@link NodeRole#healthServiceName()}).
   */
  public static Builder forNode(NodeConfig config) {
    return forNode(config, TransportSecurity.plaintext());
  }

  /** As {@link #forNode(NodeConfig)}, secured by {@code security}. */
  public static Builder forNode(NodeConfig config, TransportSecurity security) {
    return forAddress(config.network().bindHost(), config.network().grpcPort(), security)
        .name(config.role().name().toLowerCase(Locale.ROOT))
        .nodeId(config.nodeId())
        .maxInboundMessageBytes(config.network().grpcMaxInboundBytes())
        .healthService(config.role().healthServiceName())
        .healthPort(config.network().grpcHealthPort().orElse(null));
  }

  /** Any server builder (e.g. {@code InProcessServerBuilder.forName(...)} in tests). */
  public static Builder on(ServerBuilder<?> serverBuilder) {
    return new Builder(serverBuilder);
  }

  /**
   * Binds and starts serving; every configured health service turns SERVING (or NOT_SERVING, for
   * those added with {@code healthService(name, false)}).
   */
  public GrpcServer start() throws IOException {
    server.start();
    port = server.getPort();
    if (healthServer != null) {
      try {
        healthServer.start();
      } catch (IOException e) {
        server.shutdownNow();
        throw new IOException("gRPC health port: " + e.getMessage(), e);
      }
      healthPort = healthServer.getPort();
    }
    healthServices.forEach(
        (s, serving) ->
            health.setStatus(s, serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING));
    if (healthServer == null) {
      LOG.info(
          "gRPC server {} listening on port {} (health: {})", name, port, healthServices.keySet());
    } else {
      LOG.info(
          "gRPC server {} listening on port {} (health: {}; health only, plaintext, on port {})",
          name,
          port,
          healthServices.keySet(),
          healthPort);
    }
    return this;
  }

  /** The bound plaintext health port, or -1 when there is none (or before {@link #start()}). */
  public int healthPort() {
    return healthPort;
  }

  /** The bound port (the real one when configured with 0); -1 for in-process servers. */
  public int port() {
    return port;
  }

  /** The health manager, for status changes beyond {@link #setServing}. */
  public HealthStatusManager health() {
    return health;
  }

  /** Reports a health service SERVING or NOT_SERVING (e.g. while draining or switching role). */
  public void setServing(String service, boolean serving) {
    health.setStatus(service, serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
  }

  /**
   * Reports {@code service} as unknown (NOT_FOUND), e.g. the health name of a role this node left.
   */
  public void clearHealth(String service) {
    health.clearStatus(service);
  }

  /** Every service this server has, health and reflection included (for route checks). */
  public List<ServerServiceDefinition> services() {
    return server.getServices();
  }

  public boolean isTerminated() {
    return server.isTerminated();
  }

  /**
   * Graceful shutdown: health NOT_SERVING, no new calls, running calls get the grace period, then
   * are cancelled; the handler pool is stopped last. Idempotent.
   */
  @Override
  public void close() {
    close(shutdownGrace);
  }

  /**
   * As {@link #close()}, with running calls given {@code grace} (e.g. what is left of a node's
   * shutdown timeout) instead of the configured grace period.
   */
  public void close(Duration grace) {
    if (closed) {
      return;
    }
    closed = true;
    long deadline = ticker.read() + grace.toNanos();
    health.enterTerminalState();
    if (healthServer != null) {
      healthServer.shutdownNow(); // probes see the port close; health calls are instant
    }
    server.shutdown();
    try {
      if (!Termination.awaitUntil(server::awaitTermination, ticker, deadline)) {
        LOG.warn("gRPC server {}: calls still running after {}; cancelling them", name, grace);
        server.shutdownNow();
        server.awaitTermination(2, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      server.shutdownNow();
      Thread.currentThread().interrupt();
    } finally {
      executor.shutdown();
      try {
        if (!executor.awaitTermination(2, TimeUnit.SECONDS)) {
          executor.shutdownNow();
        }
      } catch (InterruptedException e) {
        executor.shutdownNow();
        Thread.currentThread().interrupt();
      }
    }
  }

  /** Configures a {@link GrpcServer}; {@link #build()} creates it unstarted. */
  public static final class Builder {
    private final ServerBuilder<?> serverBuilder;
    private final Map<String, Boolean> healthServices = new LinkedHashMap<>();
    private final List<ServerServiceDefinition> services = new ArrayList<>();
    private final List<ServerInterceptor> interceptors = new ArrayList<>();
    private String name = "server";
    private String host; // Netty servers: the bind host (the health port binds there too)
    private Integer healthPort; // null: none
    private String nodeId;
    private int threads = DEFAULT_THREADS;
    private int maxInboundMessageBytes = NetworkSettings.DEFAULT_GRPC_MAX_INBOUND_BYTES;
    private Duration shutdownGrace = DEFAULT_SHUTDOWN_GRACE;
    private Ticker ticker = Ticker.systemTicker();

    private Builder(ServerBuilder<?> serverBuilder) {
      this.serverBuilder = serverBuilder;
    }

    /** Used in thread names ({@code grpc-<name>-<n>}) and logs. */
    public Builder name(String name) {
      this.name = name;
      return this;
    }

    /** The node whose calls this serves: handler threads carry it in their log context. */
    public Builder nodeId(String nodeId) {
      this.nodeId = nodeId;
      return this;
    }

    /** Handler threads (bounded; calls queue beyond them). */
    public Builder threads(int threads) {
      if (threads < 1) {
        throw new IllegalArgumentException("threads must be >= 1, got " + threads);
      }
      this.threads = threads;
      return this;
    }

    public Builder maxInboundMessageBytes(int bytes) {
      if (bytes < 1) {
        throw new IllegalArgumentException("maxInboundMessageBytes must be >= 1, got " + bytes);
      }
      this.maxInboundMessageBytes = bytes;
      return this;
    }

    public Builder shutdownGrace(Duration grace) {
      this.shutdownGrace = grace;
      return this;
    }

    /** The clock of the shutdown grace period (the system ticker unless a test drives one). */
    public Builder ticker(Ticker ticker) {
      this.ticker = Objects.requireNonNull(ticker, "ticker");
      return this;
    }

    /** A grpc.health.v1 service name reported SERVING once started. */
    public Builder healthService(String serviceName) {
      return healthService(serviceName, true);
    }

    /**
     * A grpc.health.v1 service name reported SERVING ({@code servingAtStart}) or NOT_SERVING once
     * started (known either way, never NOT_FOUND); the node changes it later with {@link
     * GrpcServer#setServing}. Naming a service again replaces its start status.
     */
    public Builder healthService(String serviceName, boolean servingAtStart) {
      healthServices.put(serviceName, servingAtStart);
      return this;
    }

    /**
     * Also serve grpc.health.v1, and only that, in plaintext on {@code port} of the bind host (0 =
     * any free port; null = no health port). For Kubernetes gRPC probes of a TLS node.
     */
    public Builder healthPort(Integer port) {
      if (port != null && (port < 0 || port > 65535)) {
        throw new IllegalArgumentException("health port must be 0..65535, got " + port);
      }
      this.healthPort = port;
      return this;
    }

    public Builder addService(BindableService service) {
      services.add(service.bindService());
      return this;
    }

    public Builder addService(ServerServiceDefinition service) {
      services.add(service);
      return this;
    }

    /**
     * Runs {@code interceptor} on every call of every service, health and reflection included,
     * before the handler (e.g. {@code GrpcAuth.serverInterceptor}).
     */
    public Builder intercept(ServerInterceptor interceptor) {
      interceptors.add(Objects.requireNonNull(interceptor, "interceptor"));
      return this;
    }

    public GrpcServer build() {
      return new GrpcServer(this);
    }
  }
}
