package dev.pdserve.launcher.node;

import com.google.common.base.Ticker;
import com.hazelcast.cluster.Member;
import dev.pdserve.core.cluster.ClusterMember;
import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.cluster.NodeDirectory;
import dev.pdserve.core.config.ImageIntakeSettings;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.coordination.CoordinatorLease;
import dev.pdserve.core.coordination.CoordinatorLeaseStore;
import dev.pdserve.core.grpc.Channels;
import dev.pdserve.core.grpc.NodeStatusService;
import dev.pdserve.core.metrics.NodeMetrics;
import dev.pdserve.core.tls.TransportSecurity;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.launcher.node.Closer.Stage;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.PromptRenderer;
import dev.pdserve.model.tokenizer.ChatTemplate;
import dev.pdserve.router.ClusterView;
import dev.pdserve.router.PrefixRouting;
import dev.pdserve.router.Router;
import dev.pdserve.router.RouterOptions;
import dev.pdserve.router.RouterSettings;
import dev.pdserve.router.grpc.AdminGrpcService;
import dev.pdserve.router.grpc.GenerationGrpcService;
import dev.pdserve.router.grpc.GrpcNodeClients;
import dev.pdserve.router.http.HttpApiSettings;
import dev.pdserve.router.http.OpenAiHttpServer;
import dev.pdserve.router.images.ImageIntake;
import dev.pdserve.router.metrics.PrometheusRouterMetrics;
import java.io.IOException;
import java.time.Duration;
import java.util.HashSet;
import java.util.Optional;
import java.util.Set;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The router process: the public gRPC and OpenAI-compatible HTTP APIs over the cluster. Wiring
 * only: the common parts are {@link NodeRuntime}'s.
 */
public final class RouterNode implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(RouterNode.class);

  private final NodeRuntime node;
  private final NodeDirectory directory;
  private final Router router;
  private final OpenAiHttpServer http;
  private final String httpUrl;

  public static RouterNode start(NodeConfig config, RouterOptions options) throws IOException {
    return start(config, options, Ticker.systemTicker());
  }

  /**
   * As above, on {@code ticker}: the router's and its node clients' deadlines, the drain's bound.
   */
  public static RouterNode start(NodeConfig config, RouterOptions options, Ticker ticker)
      throws IOException {
    return NodeRuntime.start(RouterNode.class, config, ticker, n -> new RouterNode(n, options));
  }

  private RouterNode(NodeRuntime node, RouterOptions options) throws IOException {
    this.node = node;
    NodeConfig config = node.config();
    awaitDataMember(node);
    this.directory = node.own(Stage.CLUSTER, "node-directory", new NodeDirectory(node.registry()));
    LoadedModel model = node.model();
    Channels channels = node.channels("channels", node.channelSettings());
    TransportSecurity publicTls =
        node.own(
            Stage.RESOURCES,
            "public-api-tls",
            TransportSecurity.publicServer(config.tls().publicApi(), config.nodeId()));
    PrometheusRouterMetrics routerMetrics = new PrometheusRouterMetrics(node.metrics());
    ImageIntakeSettings imageSettings = config.router().images();
    PromptRenderer text = new PromptRenderer(model.tokenizer(), ChatTemplate.ernie());
    // a vision model's renderer takes images (refused over the pixel limit before decoding)
    PromptRenderer renderer =
        model
            .config()
            .vision()
            .map(v -> text.withVision(v, imageSettings.maxPixels()))
            .orElse(text);
    ImageIntake images = ImageIntake.of(imageSettings);
    this.router =
        node.own(
            Stage.WORK,
            "router",
            new Router(
                RouterSettings.of(
                        options,
                        ClusterView.of(directory),
                        new GrpcNodeClients(channels, node.ticker()),
                        renderer,
                        model.config())
                    .withMetrics(routerMetrics)
                    .withTicker(node.ticker())
                    .configuredBy(config.router())
                    .withPrefixRouting(
                        new PrefixRouting(
                            NodeModels.prefixHasher(model),
                            config.prefix().cachedTokenWeight(),
                            PrefixRouting.DEFAULT_TRACKED_BLOCKS_PER_NODE,
                            config.prefix().localPrefillThreshold()))));
    routerMetrics.bind(router);
    node.metrics().start();
    HttpApiSettings httpSettings =
        HttpApiSettings.on(config.network().bindHost(), config.network().httpPort())
            .withMaxBodyBytes(config.network().httpMaxBodyBytes())
            .withServedModelName(NodeModels.servedName(config, model));
    this.http =
        node.own(
            Stage.ENDPOINTS,
            "http-server",
            new OpenAiHttpServer(httpSettings, router, renderer, images, publicTls, node.access()));
    http.start();
    this.httpUrl =
        (publicTls.enabled() ? "https://" : "http://")
            + config.network().advertisedHost()
            + ":"
            + http.port();
    node.serve(
        node.serverBuilder(publicTls)
            .addService(
                new GenerationGrpcService(router, NodeModels.servedName(config, model), images))
            .addService(new NodeStatusService(this::status))
            .addService(
                new AdminGrpcService(
                    directory, config.nodeId(), httpUrl, channels, coordinatorLease(node.member())))
            .build());
    node.register(
        config::role, "", () -> new Load(0, router.inFlight(), 0, 0, 0), Duration.ofSeconds(1));
    LOG.info(
        "router {} serving the public API at {} (gRPC) and {} (OpenAI-compatible HTTP), metrics at {}",
        config.nodeId(),
        node.grpcAddress(),
        httpUrl,
        node.metrics().url());
  }

  /**
   * A router is a lite member: the registry lives on workers, so wait until one is in the cluster.
   */
  private static void awaitDataMember(NodeRuntime node) {
    StartupWait.onClock(node.ticker())
        .await(
            () ->
                node.member().hazelcast().getCluster().getMembers().stream()
                    .filter(m -> !m.isLiteMember())
                    .findFirst(),
            () ->
                LOG.info(
                    "router waiting for a worker to join the cluster (the registry lives on workers)"),
            () ->
                "no worker joined the cluster within 3 minutes; start workers with the same"
                    + " --cluster-name and --members",
            "a worker");
  }

  /**
   * The coordinator lease, when its holder is still a registered node (else the lease is stale:
   * nobody leads).
   */
  private static Supplier<Optional<CoordinatorLease>> coordinatorLease(ClusterMember member) {
    CoordinatorLeaseStore store = new CoordinatorLeaseStore(member.hazelcast());
    return () -> {
      Set<String> members = new HashSet<>();
      for (Member m : member.hazelcast().getCluster().getMembers()) {
        members.add(m.getUuid().toString());
      }
      return store.current().filter(l -> members.contains(l.memberId()));
    };
  }

  public NodeStatus status() {
    return NodeStatus.newBuilder()
        .setId(node.id())
        .setRole("router")
        .setState(node.registry().get(node.id()).map(n -> n.state().name()).orElse("ACTIVE"))
        .setGrpcAddress(node.grpcAddress())
        .setHttpUrl(httpUrl)
        .setMetricsUrl(node.metrics().url())
        .setRunningSequences(router.inFlight())
        .setQueuedRequests(router.queued())
        .build();
  }

  public String grpcAddress() {
    return node.grpcAddress();
  }

  public int port() {
    return node.server().port();
  }

  /** The OpenAI-compatible API's base URL, {@code http://host:port} (clients add {@code /v1}). */
  public String httpUrl() {
    return httpUrl;
  }

  /** {@code host:port} of the HTTP API. */
  public String httpAddress() {
    return node.config().network().advertisedHost() + ":" + http.port();
  }

  public NodeDirectory directory() {
    return directory;
  }

  public Router router() {
    return router;
  }

  /** The router's metrics registry and {@code /metrics} endpoint. */
  public NodeMetrics metrics() {
    return node.metrics();
  }

  NodeRuntime runtime() {
    return node;
  }

  /**
   * Calls {@code listener} with each step of the shutdown drain as it begins (on the draining
   * thread).
   */
  public void onDrainPhase(Consumer<DrainPhase> listener) {
    node.onDrainPhase(listener);
  }

  /**
   * Graceful shutdown, bounded by {@code timeout} (plus a few seconds to close): {@code
   * pdserve.router} goes NOT_SERVING (the overall health stays SERVING), the registry entry
   * DRAINING; new requests — gRPC {@code Generate} and the OpenAI HTTP API alike — are refused with
   * UNAVAILABLE / HTTP 503 "router ID is shutting down; retry on another replica" (and HTTP {@code
   * /health} answers 503); requests already taken run to completion. Whatever is still running when
   * the timeout passes ends with UNAVAILABLE. Then the router deregisters and closes. Idempotent.
   */
  public DrainSummary drainAndClose(Duration timeout) {
    return node.drainAndClose(timeout, RouterDrain::new);
  }

  /** Closes at once: requests in flight end with UNAVAILABLE. {@link #drainAndClose} drains. */
  @Override
  public void close() {
    node.close();
  }

  /** The router's steps of the drain. */
  private final class RouterDrain implements NodeDrain {
    @Override
    public String describe() {
      return "router " + node.id();
    }

    @Override
    public void stopServing() {
      node.server().setServing(node.config().role().healthServiceName(), false);
      router.stopAccepting("router " + node.id() + " is shutting down; retry on another replica");
    }

    @Override
    public Held held() {
      return new Held(router.running(), router.queued());
    }

    @Override
    public void refuseNewWork() {
      // refused since stopServing: the router turns every new request away itself
    }

    @Override
    public void awaitWork(Deadline deadline, Runnable migrating) {
      router.awaitIdle(deadline.remaining());
    }

    @Override
    public Tally tally(Held atStart) {
      return Tally.allButFailed(atStart, router.inFlight());
    }
  }
}
