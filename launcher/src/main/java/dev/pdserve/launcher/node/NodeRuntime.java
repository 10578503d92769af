package dev.pdserve.launcher.node;

import com.google.common.base.Ticker;
import dev.pdserve.core.auth.AccessControl;
import dev.pdserve.core.auth.GrpcAuth;
import dev.pdserve.core.cluster.ClusterMember;
import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.grpc.Channels;
import dev.pdserve.core.grpc.GrpcServer;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.core.metrics.NodeMetrics;
import dev.pdserve.core.tls.TransportSecurity;
import dev.pdserve.launcher.node.Closer.Stage;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.ModelWeights;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * What every node process is made of, wired once for the three kinds (worker, router, expert
 * shard): the Hazelcast member and the node registry, the model, the metrics endpoint, the gRPC
 * server, the registry presence, everything the node owns (closed once each, in {@link Stage}
 * order) and the shutdown drain's sequence. A kind plugs in what is its own: its engines and
 * services, built on this in a {@link Wiring}, and its drain steps, a {@link NodeDrain}.
 *
 * <p>Time is the node's {@link Ticker}: the drain's deadline and elapsed time, and what a kind's
 * waits decide, read it ({@link Ticker#systemTicker()} in production).
 */
final class NodeRuntime implements AutoCloseable {
  /** Builds a node kind's parts on a started runtime. */
  @FunctionalInterface
  interface Wiring<N> {
    N wire(NodeRuntime node) throws IOException;
  }

  private final Logger log;
  private final NodeConfig config;
  private final Ticker ticker;
  private final Closer closer = new Closer();
  private final TransportSecurity security;
  private final ClusterMember member;
  private final NodeRegistry registry;
  private final LoadedModel model;
  private final NodeMetrics metrics;
  private final AccessControl access;
  private final DrainListeners drainListeners = new DrainListeners();
  private final Object drainLock = new Object();
  private DrainSummary drained; // guarded by drainLock

  /** Set when a drain begins: the gRPC server's calls get what is left of it. */
  private volatile Deadline drainDeadline;

  private GrpcServer server;
  private String grpcAddress;
  private RegistryPresence presence;

  /**
   * Starts the parts every node has (cluster member, registry, model, metrics — not yet serving),
   * then the kind's own with {@code wiring}; if either fails, closes what was opened and rethrows.
   * Threads the node's components start log under its node id.
   *
   * @param kind the node class: the drain's log lines are logged under its name
   */
  static <N> N start(Class<?> kind, NodeConfig config, Ticker ticker, Wiring<N> wiring)
      throws IOException {
    try (var logContext = LogContext.node(config.nodeId())) {
      NodeRuntime node = new NodeRuntime(LogManager.getLogger(kind), config, ticker);
      try {
        return wiring.wire(node);
      } catch (IOException | RuntimeException | Error e) {
        node.close();
        throw e;
      }
    }
  }

  private NodeRuntime(Logger log, NodeConfig config, Ticker ticker) throws IOException {
    this.log = log;
    this.config = config;
    this.ticker = ticker;
    boolean ok = false;
    try {
      // First: a missing or empty key file stops the node before it joins anything.
      this.access = AccessControl.of(config.auth(), ticker);
      this.security =
          own(
              Stage.RESOURCES,
              "cluster-tls",
              TransportSecurity.cluster(config.tls().cluster(), config.nodeId()));
      if (security.enabled()) {
        log.info("node {}: {} between nodes", config.nodeId(), security);
      }
      this.member = own(Stage.CLUSTER, "cluster-member", ClusterMember.start(config));
      this.registry = own(Stage.CLUSTER, "node-registry", new NodeRegistry(member.hazelcast()));
      this.model = own(Stage.RESOURCES, "model", LoadedModel.load(NodeModels.spec(config)));
      this.metrics =
          own(
              Stage.ENDPOINTS,
              "metrics",
              new NodeMetrics(config, NodeModels.servedName(config, model)).protectWith(access));
      ok = true;
    } finally {
      if (!ok) {
        closer.close();
      }
    }
  }

  NodeConfig config() {
    return config;
  }

  String id() {
    return config.nodeId();
  }

  /**
   * How this node's connections to other nodes are secured: the cluster's mutual TLS ({@code
   * pdserve.tls.*}) or plaintext. Its gRPC server, its channels and its KV endpoint use it.
   */
  TransportSecurity security() {
    return security;
  }

  /** Channel settings for calls to other nodes: the node's defaults and its {@link #security}. */
  Channels.Settings channelSettings() {
    return Channels.Settings.forNode(config).withSecurity(security);
  }

  /** The node's clock (nanoseconds). */
  Ticker ticker() {
    return ticker;
  }

  ClusterMember member() {
    return member;
  }

  NodeRegistry registry() {
    return registry;
  }

  LoadedModel model() {
    return model;
  }

  /** The node's metrics registry and {@code /metrics} endpoint (the kind starts it). */
  NodeMetrics metrics() {
    return metrics;
  }

  /** Takes ownership of {@code resource}: it closes once, in {@code stage}. Returns it. */
  <T extends AutoCloseable> T own(Stage stage, String name, T resource) {
    return closer.add(stage, name, resource);
  }

  /** Closes one owned resource now, ahead of its stage (e.g. the coordinator steps down). */
  void closeNow(AutoCloseable resource) {
    closer.closeNow(resource);
  }

  /** ONNX Runtime as this node's config asks for (the process has one environment). */
  OrtRuntime ort() {
    return OrtRuntime.shared(
        new OrtRuntime.RuntimeOptions(
            config.engine().ortThreads(), config.engine().ortCuda(), true));
  }

  /**
   * The model's weights on {@link #ort()}, owned here (closed after the sessions built on them).
   */
  ModelWeights loadWeights() {
    return own(
        Stage.RESOURCES,
        "model-weights",
        new ModelWeights(model.config(), model.weights(), ort(), config.engine().quantization()));
  }

  /**
   * A gRPC server for this node, to add services to: its bind host and port, inbound limit and node
   * id, its role's health name SERVING once started.
   */
  GrpcServer.Builder serverBuilder() {
    return serverBuilder(security);
  }

  /** As {@link #serverBuilder()}, secured by {@code s} (the router's public API TLS). */
  GrpcServer.Builder serverBuilder(TransportSecurity s) {
    return GrpcServer.forNode(config, s)
        .name(config.nodeId())
        .intercept(GrpcAuth.serverInterceptor(access));
  }

  /** Who may call this node ({@code pdserve.auth.*}). */
  AccessControl access() {
    return access;
  }

  /**
   * Channels to other nodes with {@code settings}, sending the cluster token when there is one;
   * owned (closed with the node's resources).
   */
  Channels channels(String name, Channels.Settings settings) {
    return own(Stage.RESOURCES, name, new Channels(settings, GrpcAuth.clusterCredentials(access)));
  }

  /**
   * Starts {@code server} and owns it: it stops with the other endpoints, after the engines, giving
   * running calls what is left of a drain (1 to 10 s) or its own grace period.
   *
   * @return the address clients reach it at, {@code advertisedHost:port}
   */
  String serve(GrpcServer server) throws IOException {
    own(Stage.ENDPOINTS, "grpc-server", () -> server.close(serverGrace()));
    server.start();
    this.server = server;
    this.grpcAddress = config.network().advertisedHost() + ":" + server.port();
    return grpcAddress;
  }

  private Duration serverGrace() {
    Deadline d = drainDeadline;
    return d == null
        ? GrpcServer.DEFAULT_SHUTDOWN_GRACE
        : d.remaining(Duration.ofSeconds(1), GrpcServer.DEFAULT_SHUTDOWN_GRACE);
  }

  GrpcServer server() {
    return server;
  }

  String grpcAddress() {
    return grpcAddress;
  }

  /**
   * Registers the node ACTIVE (after {@link #serve}) and keeps its entry current every {@code
   * period}; owned: the entry is removed when the node closes.
   *
   * @param role the role to register under (a worker's changes with role switches)
   * @param flightAddress the node's KV Flight endpoint, or ""
   */
  void register(
      Supplier<NodeRole> role, String flightAddress, Supplier<Load> load, Duration period) {
    RegistryPresence.Entry entry =
        new RegistryPresence.Entry(id(), role, grpcAddress, flightAddress, metrics.url());
    this.presence =
        own(
            Stage.PRESENCE,
            "registry-presence",
            new RegistryPresence(registry, entry, load, period));
  }

  RegistryPresence presence() {
    return presence;
  }

  /**
   * Calls {@code listener} with each step of the shutdown drain as it begins (on the draining
   * thread, before the step runs).
   */
  void onDrainPhase(Consumer<DrainPhase> listener) {
    drainListeners.add(listener);
  }

  /**
   * Drains within {@code timeout} (see {@link NodeDrain} for the sequence), then closes everything.
   * Idempotent: a later call returns the first one's summary ({@code steps} is asked for once).
   */
  DrainSummary drainAndClose(Duration timeout, Supplier<NodeDrain> steps) {
    synchronized (drainLock) {
      if (drained == null) {
        drained = drain(timeout, steps.get());
      }
      return drained;
    }
  }

  private DrainSummary drain(Duration timeout, NodeDrain work) {
    long t0 = ticker.read();
    Deadline deadline = Deadline.after(ticker, timeout);
    drainDeadline = deadline;
    try (var logContext = LogContext.node(config.nodeId())) {
      work.stopServing();
      NodeDrain.Held held = work.held();
      log.info(
          "draining: {} running, {} queued, timeout {} ms ({})",
          held.running(),
          held.queued(),
          timeout.toMillis(),
          work.describe());
      presence.leave();
      work.refuseNewWork();
      drainListeners.fire(DrainPhase.DRAINING);
      work.awaitWork(deadline, () -> drainListeners.fire(DrainPhase.MIGRATING));
      drainListeners.fire(DrainPhase.CLOSING);
      closer.closeThrough(Stage.PRESENCE); // deregistered
      NodeDrain.Tally tally = work.tally(held);
      closer.close(); // engines end what is left with UNAVAILABLE, then servers, member, memory
      DrainSummary summary =
          new DrainSummary(
              config.nodeId(),
              held.running(),
              held.queued(),
              tally.finished(),
              tally.migrated(),
              tally.failed(),
              (ticker.read() - t0) / 1_000_000);
      log.info(summary.describe());
      return summary;
    }
  }

  /** What the node closed so far, in order. */
  List<Closer.Closed> closed() {
    return closer.closed();
  }

  /** What the node still holds open. */
  List<Closer.Closed> stillOpen() {
    return closer.stillOpen();
  }

  /** Closes everything at once, in {@link Stage} order; drains nothing. Idempotent. */
  @Override
  public void close() {
    closer.close();
  }
}
