package dev.pdserve.launcher.node;

import com.google.common.base.Ticker;
import dev.pdserve.core.cluster.ClusterMember;
import dev.pdserve.core.cluster.NodeDirectory;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.grpc.Channels;
import dev.pdserve.core.grpc.GrpcServer;
import dev.pdserve.core.grpc.NodeStatusService;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.core.metrics.NodeMetrics;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.PromptRenderer;
import dev.pdserve.model.tokenizer.ChatTemplate;
import dev.pdserve.router.ClusterView;
import dev.pdserve.router.PrefixRouting;
import dev.pdserve.router.Router;
import dev.pdserve.router.RouterOptions;
import dev.pdserve.router.RouterSettings;
import dev.pdserve.router.grpc.GenerationGrpcService;
import dev.pdserve.router.grpc.GrpcNodeClients;
import dev.pdserve.router.http.HttpApiSettings;
import dev.pdserve.router.http.OpenAiHttpServer;
import dev.pdserve.router.metrics.PrometheusRouterMetrics;
import java.io.IOException;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The router process: the public gRPC and OpenAI-compatible HTTP APIs over the cluster. Wiring
 * only.
 */
public final class RouterNode implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(RouterNode.class);

  private final NodeConfig config;
  private final Closer closer = new Closer();
  private final NodeRegistry registry;
  private final NodeDirectory directory;
  private final Router router;
  private final GrpcServer server;
  private final NodeMetrics metrics;
  private final String grpcAddress;
  private final OpenAiHttpServer http;
  private final String httpUrl;
  private final RegistryPresence presence;
  private final DrainListeners drainListeners = new DrainListeners();
  private final Object drainLock = new Object();
  private DrainSummary drained; // guarded by drainLock

  public static RouterNode start(NodeConfig config, RouterOptions options) throws IOException {
    return new RouterNode(config, options);
  }

  private RouterNode(NodeConfig config, RouterOptions options) throws IOException {
    this.config = config;
    boolean ok = false;
    // Threads the router's components start log under its node id.
    try (var logContext = LogContext.node(config.nodeId())) {
      ClusterMember member = closer.add(ClusterMember.start(config));
      awaitDataMember(member);
      this.registry = closer.add(new NodeRegistry(member.hazelcast()));
      this.directory = closer.add(new NodeDirectory(registry));
      LoadedModel model = closer.add(LoadedModel.load(NodeModels.spec(config)));
      Channels channels = closer.add(new Channels(Channels.Settings.forNode(config)));
      this.metrics = closer.add(new NodeMetrics(config, model.config().name()));
      PrometheusRouterMetrics routerMetrics = new PrometheusRouterMetrics(metrics);
      PromptRenderer renderer = new PromptRenderer(model.tokenizer(), ChatTemplate.ernie());
      Ticker clock = Ticker.systemTicker(); // the router's and its node clients' deadlines
      this.router =
          closer.add(
              new Router(
                  RouterSettings.of(
                          options,
                          ClusterView.of(directory),
                          new GrpcNodeClients(channels, clock),
                          renderer,
                          model.config())
                      .withMetrics(routerMetrics)
                      .withTicker(clock)
                      .configuredBy(config.router())
                      .withPrefixRouting(
                          new PrefixRouting(
                              NodeModels.prefixHasher(model),
                              config.prefix().cachedTokenWeight(),
                              PrefixRouting.DEFAULT_TRACKED_BLOCKS_PER_NODE,
                              config.prefix().localPrefillThreshold()))));
      routerMetrics.bind(router);
      metrics.start();
      HttpApiSettings httpSettings =
          HttpApiSettings.on(config.network().bindHost(), config.network().httpPort())
              .withMaxBodyBytes(config.network().httpMaxBodyBytes());
      this.http = closer.add(new OpenAiHttpServer(httpSettings, router, renderer));
      http.start();
      this.httpUrl = "http://" + config.network().advertisedHost() + ":" + http.port();
      this.server =
          closer.add(
              GrpcServer.forNode(config)
                  .name(config.nodeId())
                  .healthService(config.role().healthServiceName())
                  .addService(new GenerationGrpcService(router, model.config().name()))
                  .addService(new NodeStatusService(this::status))
                  .addService(
                      new dev.pdserve.router.grpc.AdminGrpcService(
                          directory,
                          config.nodeId(),
                          httpUrl,
                          channels,
                          coordinatorLease(member, directory)))
                  .build());
      server.start();
      this.grpcAddress = config.network().advertisedHost() + ":" + server.port();
      this.presence =
          closer.add(
              new RegistryPresence(
                  registry,
                  config.nodeId(),
                  config.role(),
                  grpcAddress,
                  "",
                  metrics.url(),
                  () -> new dev.pdserve.core.cluster.Load(0, router.inFlight(), 0, 0, 0),
                  1000));
      LOG.info(
          "router {} serving the public API at {} (gRPC) and {} (OpenAI-compatible HTTP), metrics at {}",
          config.nodeId(),
          grpcAddress,
          httpUrl,
          metrics.url());
      ok = true;
    } finally {
      if (!ok) {
        closer.close();
      }
    }
  }

  /**
   * A router is a lite member: the registry lives on workers, so wait until one is in the cluster.
   */
  private static void awaitDataMember(ClusterMember member) {
    long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.MINUTES.toNanos(3);
    boolean logged = false;
    while (member.hazelcast().getCluster().getMembers().stream().allMatch(m -> m.isLiteMember())) {
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException(
            "no worker joined the cluster within 3 minutes; start workers with the same --cluster-name and --members");
      }
      if (!logged) {
        LOG.info("router waiting for a worker to join the cluster (the registry lives on workers)");
        logged = true;
      }
      try {
        Thread.sleep(100);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted while waiting for a worker", e);
      }
    }
  }

  /**
   * The coordinator lease, when its holder is still a registered node (else the lease is stale:
   * nobody leads).
   */
  private static java.util.function.Supplier<
          java.util.Optional<dev.pdserve.core.coordination.CoordinatorLease>>
      coordinatorLease(ClusterMember member, NodeDirectory directory) {
    dev.pdserve.core.coordination.CoordinatorLeaseStore store =
        new dev.pdserve.core.coordination.CoordinatorLeaseStore(member.hazelcast());
    return () -> {
      java.util.Set<String> members = new java.util.HashSet<>();
      member
          .hazelcast()
          .getCluster()
          .getMembers()
          .forEach(m -> members.add(m.getUuid().toString()));
      return store.current().filter(l -> members.contains(l.memberId()));
    };
  }

  public NodeStatus status() {
    return NodeStatus.newBuilder()
        .setId(config.nodeId())
        .setRole("router")
        .setState(registry.get(config.nodeId()).map(n -> n.state().name()).orElse("ACTIVE"))
        .setGrpcAddress(grpcAddress)
        .setHttpUrl(httpUrl)
        .setMetricsUrl(metrics.url())
        .setRunningSequences(router.inFlight())
        .setQueuedRequests(router.queued())
        .build();
  }

  public String grpcAddress() {
    return grpcAddress;
  }

  public int port() {
    return server.port();
  }

  /** The OpenAI-compatible API's base URL, {@code http://host:port} (clients add {@code /v1}). */
  public String httpUrl() {
    return httpUrl;
  }

  /** {@code host:port} of the HTTP API. */
  public String httpAddress() {
    return config.network().advertisedHost() + ":" + http.port();
  }

  public NodeDirectory directory() {
    return directory;
  }

  public Router router() {
    return router;
  }

  /** The router's metrics registry and {@code /metrics} endpoint. */
  public NodeMetrics metrics() {
    return metrics;
  }

  /**
   * Calls {@code listener} with each step of the shutdown drain as it begins (on the draining
   * thread).
   */
  public void onDrainPhase(java.util.function.Consumer<DrainPhase> listener) {
    drainListeners.add(listener);
  }

  /**
   * Graceful shutdown, bounded by {@code timeout} (plus a few seconds to close): {@code
   * pdserve.router} goes NOT_SERVING (the overall health stays SERVING), the registry entry
   * DRAINING; new requests — gRPC {@code Generate} and the OpenAI HTTP API alike — are refused with
   * UNAVAILABLE / HTTP 503 "router ID is shutting down; retry on another replica" (and HTTP {@code
   * /health} answers 503); requests already taken run to completion. Whatever is still running when
   * the timeout passes ends with UNAVAILABLE. Then the router deregisters and closes. Idempotent.
   */
  public DrainSummary drainAndClose(java.time.Duration timeout) {
    synchronized (drainLock) {
      if (drained == null) {
        drained = drain(timeout);
      }
      return drained;
    }
  }

  private DrainSummary drain(java.time.Duration timeout) {
    long t0 = System.nanoTime();
    Deadline deadline = Deadline.after(timeout);
    try (var logContext = LogContext.node(config.nodeId())) {
      server.setServing(config.role().healthServiceName(), false);
      router.stopAccepting(
          "router " + config.nodeId() + " is shutting down; retry on another replica");
      int running = router.running();
      int queued = router.queued();
      LOG.info(
          "draining: {} running, {} queued, timeout {} ms (router {})",
          running,
          queued,
          timeout.toMillis(),
          config.nodeId());
      presence.leave();
      phase(DrainPhase.DRAINING);
      router.awaitIdle(deadline.remaining());
      phase(DrainPhase.CLOSING);
      int failed = router.inFlight();
      presence.close();
      router.close(); // what is left ends with UNAVAILABLE
      server.close(
          deadline.remaining(java.time.Duration.ofSeconds(1), GrpcServer.DEFAULT_SHUTDOWN_GRACE));
      closer.close();
      DrainSummary summary =
          new DrainSummary(
              config.nodeId(),
              running,
              queued,
              Math.max(0, running + queued - failed),
              0,
              failed,
              (System.nanoTime() - t0) / 1_000_000);
      LOG.info(summary.describe());
      return summary;
    }
  }

  private void phase(DrainPhase p) {
    drainListeners.fire(p);
  }

  /** Closes at once: requests in flight end with UNAVAILABLE. {@link #drainAndClose} drains. */
  @Override
  public void close() {
    closer.close();
  }
}
