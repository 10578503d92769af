package dev.pdserve.launcher.node;

import com.google.common.base.Ticker;
import dev.pdserve.core.cluster.ClusterMember;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.config.ExpertsMode;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.coordination.RoleCoordinator;
import dev.pdserve.core.coordination.RoleSwitchResult;
import dev.pdserve.core.coordination.RoleSwitcher;
import dev.pdserve.core.grpc.Channels;
import dev.pdserve.core.grpc.GrpcSwitchExecutor;
import dev.pdserve.core.grpc.NodeStatusService;
import dev.pdserve.core.grpc.RoleGrpcService;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvEndpoint;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.core.metrics.NodeMetrics;
import dev.pdserve.core.metrics.RoleChangeMetrics;
import dev.pdserve.decode.DecodeEngine;
import dev.pdserve.decode.DecodeStats;
import dev.pdserve.decode.grpc.DecodeGrpcService;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.launcher.node.Closer.Stage;
import dev.pdserve.model.engine.ExpertBackend;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.LocalExperts;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.vision.VisionEncoder;
import dev.pdserve.model.weights.ModelWeights;
import dev.pdserve.prefill.PrefillEngine;
import dev.pdserve.prefill.PrefillStats;
import dev.pdserve.prefill.grpc.PrefillGrpcService;
import dev.pdserve.prefill.metrics.PrometheusPrefillMetrics;
import java.io.IOException;
import java.time.Duration;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * A worker process: model weights (attention, gates, shared experts, embeddings, LM head), one
 * paged KV pool, the Flight KV endpoint, and both role services — prefill and decode. Which role it
 * serves is its entry in the registry. Wiring only: the roles live in their modules, the common
 * node parts are {@link NodeRuntime}'s, the engines {@link WorkerEngines}', the role and its health
 * names {@link WorkerRoles}'.
 */
public final class WorkerNode implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(WorkerNode.class);

  private final NodeRuntime node;
  private final WorkerEngines engines;
  private final WorkerRoles roles;
  private final RoleCoordinator coordinator; // null when coordinator.enabled is false
  private final String flightAddress;
  private final AtomicBoolean outOfService = new AtomicBoolean();

  /**
   * Starts a worker; {@code allocator} is the process's Arrow root (a child is used and closed).
   */
  public static WorkerNode start(
      NodeConfig config, BufferAllocator allocator, ExpertBackendFactory experts)
      throws IOException {
    return start(config, allocator, experts, Ticker.systemTicker());
  }

  /** As above, on {@code ticker}: the engines' leases, TTLs and drains, the node's drain bound. */
  public static WorkerNode start(
      NodeConfig config, BufferAllocator allocator, ExpertBackendFactory experts, Ticker ticker)
      throws IOException {
    if (config.role() != NodeRole.PREFILL && config.role() != NodeRole.DECODE) {
      throw new IllegalArgumentException(
          "a worker's role must be prefill or decode, got " + config.role());
    }
    return NodeRuntime.start(
        WorkerNode.class, config, ticker, n -> new WorkerNode(n, allocator, experts));
  }

  /** How a worker gets its routed experts. */
  @FunctionalInterface
  public interface ExpertBackendFactory {
    /** The experts of the worker {@code node} (what they open, {@code node} owns). */
    ExpertBackend create(NodeRuntime node, ModelWeights weights);

    /** This factory's backend passed through {@code wrap} (tests put a gate around it). */
    default ExpertBackendFactory andThen(UnaryOperator<ExpertBackend> wrap) {
      return (node, weights) -> wrap.apply(create(node, weights));
    }

    /** Every expert in the worker's process, or on shards when the config says remote. */
    static ExpertBackendFactory fromConfig() {
      return (node, weights) -> {
        if (node.config().engine().expertsMode() == ExpertsMode.REMOTE) {
          return RemoteExpertsWiring.create(node);
        }
        return new LocalExperts(
            node.own(
                Stage.RESOURCES,
                "expert-compute",
                new ExpertCompute(
                    node.model().config(), weights, node.ort(), ExpertCompute.HostedExperts.ALL)));
      };
    }
  }

  private WorkerNode(NodeRuntime node, BufferAllocator allocator, ExpertBackendFactory experts)
      throws IOException {
    this.node = node;
    NodeConfig config = node.config();
    NodeMemory.requireWorkerFits(config, node.model().config());
    ModelWeights weights = node.loadWeights();
    ModelRunner runner =
        node.own(
            Stage.RESOURCES,
            "model-runner",
            new ModelRunner(
                node.model().config(), weights, node.ort(), config.engine().numerics()));
    ExpertBackend backend = experts.create(node, weights);
    Channels channels = node.channels("channels", node.channelSettings());
    VisionEncoder vision =
        node.model().config().vision().isPresent() && config.engine().visionEnabled()
            ? node.own(
                Stage.RESOURCES,
                "vision-encoder",
                new VisionEncoder(
                    node.model().config(),
                    weights,
                    node.ort(),
                    config.engine().visionAttentionChunk()))
            : null;
    this.engines = new WorkerEngines(node, allocator, runner, backend, channels, vision);
    node.metrics().start();
    this.roles = new WorkerRoles(node, engines);
    String host = config.network().advertisedHost();
    node.serve(
        node.serverBuilder()
            // NOT_SERVING until registered ACTIVE (WorkerRoles); known from the start
            .healthService(NodeRole.WORKER_HEALTH_SERVICE, false)
            .healthService(NodeRole.PREFILL.healthServiceName(), false)
            .healthService(NodeRole.DECODE.healthServiceName(), false)
            .addService(
                new PrefillGrpcService(engines.prefill(), config.network().grpcMaxInboundBytes()))
            .addService(
                new DecodeGrpcService(
                    engines.decode(),
                    () -> new KvEndpoint(host, engines.flightPort()),
                    config.network().grpcMaxInboundBytes()))
            .addService(new NodeStatusService(this::status))
            .addService(new RoleGrpcService(roles.switcher()))
            .build());
    this.flightAddress = host + ":" + engines.flightPort();
    node.register(
        roles::role, flightAddress, () -> engines.load(roles.role()), Duration.ofMillis(200));
    roles.registered(node.server());
    this.coordinator =
        config.coordinator().enabled()
            ? node.own(
                Stage.PRESENCE,
                "coordinator",
                new RoleCoordinator(
                    node.member().hazelcast(),
                    node.registry(),
                    config.nodeId(),
                    new RoleCoordinator.Timing(
                        config.coordinator().period(),
                        RoleCoordinator.DEFAULT_SETTLE,
                        node.ticker()),
                    CoordinatorWiring.planner(config),
                    new GrpcSwitchExecutor(
                        channels, config.coordinator().drainTimeout().plusSeconds(30))))
            : null;
    engines.prefill().loopDied().thenAccept(this::outOfService);
    engines.decode().loopDied().thenAccept(this::outOfService);
    LOG.info(
        "worker {} ({}) serving gRPC at {}, KV Flight at {}, metrics at {}, {} KV blocks of {} tokens in {}",
        config.nodeId(),
        config.role(),
        node.grpcAddress(),
        flightAddress,
        node.metrics().url(),
        engines.pool().totalBlocks(),
        engines.layout().blockSize(),
        engines.layout().dtype().configName());
  }

  /**
   * An engine's step loop died ({@code why}; the engine failed what it held): this worker stops
   * advertising itself, once — every health name, the server's overall {@code ""} too (so a
   * liveness probe restarts it), goes NOT_SERVING; role switches are refused and both engines
   * refuse new work; its coordinator steps down; its registry entry goes DRAINING, so routers stop
   * choosing it. What the other engine still runs finishes. Runs on the dead loop's thread.
   */
  private void outOfService(String why) {
    if (!outOfService.compareAndSet(false, true)) {
      return;
    }
    try (var ctx = LogContext.node(node.id())) {
      LOG.warn(
          "worker {} is out of service: {}; it reports NOT_SERVING and leaves the registry"
              + " (DRAINING); restart it",
          node.id(),
          why);
      try {
        roles.shutDown("worker " + node.id() + " is out of service: " + why);
        node.server().setServing("", false);
        engines.setAccepting(NodeRole.PREFILL, false);
        engines.setAccepting(NodeRole.DECODE, false);
        if (coordinator != null) {
          node.closeNow(coordinator);
        }
        node.presence().leave();
      } catch (RuntimeException e) {
        LOG.error("worker {} could not take itself out of service", node.id(), e);
      }
    }
  }

  /** Whether an engine's step loop died and this worker took itself out of service. */
  public boolean outOfService() {
    return outOfService.get();
  }

  public NodeStatus status() {
    NodeInfo reg = node.registry().get(node.id()).orElse(node.presence().current());
    DecodeEngine decode = engines.decode();
    PrefillEngine prefill = engines.prefill();
    KvBlockPool pool = engines.pool();
    RoleSwitcher switcher = roles.switcher();
    DecodeStats d = decode.stats();
    PrefillStats p = prefill.stats();
    return NodeStatus.newBuilder()
        .setId(node.id())
        .setRole(reg.role().name().toLowerCase(Locale.ROOT))
        .setState(reg.state().name())
        .setEpoch(reg.epoch())
        .setGrpcAddress(node.grpcAddress())
        .setFlightAddress(flightAddress)
        .setMetricsUrl(node.metrics().url())
        .setKvFreeBlocks(pool.freeBlocks())
        .setKvTotalBlocks(pool.totalBlocks())
        .setRunningSequences(d.running())
        .setQueuedRequests(p.queuedJobs())
        .setQueuedPromptTokens(p.queuedPromptTokens())
        .setMaxBatchSizeSeen(d.maxBatchSeen())
        .setMeanBatchSize(d.meanBatch())
        .setSteps(d.steps())
        .setKvReservedBlocks(decode.reservedBlocks())
        .setKvCachedBlocks(pool.cachedBlocks())
        .setPrefixCacheQueries(prefill.prefixCacheQueries())
        .setPrefixCacheHits(prefill.prefixCacheHits())
        .setLocalPrefills(decode.localPrefills())
        .setLeasesExpired(decode.leasesExpired())
        .setRoleSwitches(switcher.switches())
        .setMigrations(decode.migrations())
        .setLastSwitchMillis(switcher.last().map(RoleSwitchResult::durationMillis).orElse(0L))
        .setLastSwitch(switcher.last().map(WorkerNode::describe).orElse(""))
        .build();
  }

  private static String describe(RoleSwitchResult r) {
    return WorkerRoles.name(r.from())
        + "->"
        + WorkerRoles.name(r.to())
        + (r.accepted() ? "" : " (abandoned)")
        + " epoch "
        + r.epoch()
        + " in "
        + r.durationMillis()
        + " ms, "
        + r.migrated()
        + " migrated";
  }

  /** The role this worker serves now. */
  public NodeRole role() {
    return roles.role();
  }

  public RoleSwitcher switcher() {
    return roles.switcher();
  }

  /** The coordinator runtime, if this worker runs one (it leads only when elected). */
  public Optional<RoleCoordinator> coordinator() {
    return Optional.ofNullable(coordinator);
  }

  public NodeConfig config() {
    return node.config();
  }

  public String id() {
    return node.id();
  }

  public String grpcAddress() {
    return node.grpcAddress();
  }

  public KvBlockPool pool() {
    return engines.pool();
  }

  public DecodeEngine decode() {
    return engines.decode();
  }

  public PrefillEngine prefill() {
    return engines.prefill();
  }

  public ClusterMember member() {
    return node.member();
  }

  /** This worker's metrics registry and {@code /metrics} endpoint. */
  public NodeMetrics metrics() {
    return node.metrics();
  }

  /** Where prefix cache lookups are counted ({@code vllm:prefix_cache_queries} / {@code _hits}). */
  public PrometheusPrefillMetrics prefillMetrics() {
    return engines.prefillMetrics();
  }

  /** Where role switches and migrations of this worker are counted. */
  public RoleChangeMetrics roleChanges() {
    return roles.metrics();
  }

  NodeRuntime runtime() {
    return node;
  }

  /**
   * Calls {@code listener} with each step of the shutdown drain as it begins (on the draining
   * thread, before the step runs).
   */
  public void onDrainPhase(Consumer<DrainPhase> listener) {
    node.onDrainPhase(listener);
  }

  /**
   * Drains within {@code timeout}, then closes (what SIGTERM does). Running decode sequences may
   * finish here during the first half of the timeout; those still running then move to other ACTIVE
   * decode nodes. See {@link #drainAndClose(Duration, Duration)}.
   */
  public DrainSummary drainAndClose(Duration timeout) {
    return drainAndClose(timeout, timeout.dividedBy(2));
  }

  /**
   * Graceful shutdown, bounded by {@code timeout} (plus a few seconds to close): first the
   * readiness health names ({@code pdserve.worker}, {@code pdserve.prefill}, {@code
   * pdserve.decode}) go NOT_SERVING while the overall health stays SERVING; role switches are
   * refused, the coordinator steps down, the registry entry goes DRAINING (routers stop choosing
   * this node) and both engines refuse new work. Prefills held are finished and their KV handed
   * over; decode sequences run on for {@code migrateAfter}, then those still running move to
   * another ACTIVE decode node over Flight (their streams continue there through the router) — or,
   * when no other node takes them, run on until the timeout. Then the node deregisters; whatever is
   * still held ends with UNAVAILABLE ("node shutting down"), its KV freed; the servers and the rest
   * close. Idempotent: a second call returns the first one's summary.
   */
  public DrainSummary drainAndClose(Duration timeout, Duration migrateAfter) {
    return node.drainAndClose(
        timeout,
        () ->
            new WorkerDrain(
                node.id(),
                engines,
                roles,
                coordinator == null ? () -> {} : () -> node.closeNow(coordinator),
                Deadline.after(
                    node.ticker(), migrateAfter.compareTo(timeout) < 0 ? migrateAfter : timeout)));
  }

  /**
   * For fault tests: stops this worker as abruptly as a killed process stops. Its gRPC and Flight
   * servers stop at once (open calls and streams break; nothing drains, migrates or says goodbye)
   * and its Hazelcast member is terminated without leaving gracefully, so the cluster finds it gone
   * as it would a dead process and its registry entry lingers until then. Afterwards everything
   * else it holds is closed, so the JVM running the test gets its memory back. Production code
   * stops a worker with {@link #drainAndClose} or {@link #close}.
   */
  public void crash() {
    node.server().close(Duration.ZERO);
    engines.kvIntake().close();
    node.member().hazelcast().getLifecycleService().terminate();
    node.close();
  }

  /** Closes at once: running work ends with UNAVAILABLE. {@link #drainAndClose} drains first. */
  @Override
  public void close() {
    node.close();
  }
}
