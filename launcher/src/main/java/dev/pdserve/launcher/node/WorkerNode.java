package dev.pdserve.launcher.node;

import com.google.common.base.Ticker;
import dev.pdserve.core.cluster.ClusterMember;
import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.config.ExpertsMode;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.coordination.DrainReport;
import dev.pdserve.core.coordination.RoleCoordinator;
import dev.pdserve.core.coordination.RoleEngines;
import dev.pdserve.core.coordination.RoleSwitchResult;
import dev.pdserve.core.coordination.RoleSwitcher;
import dev.pdserve.core.experts.RemoteExperts;
import dev.pdserve.core.grpc.Channels;
import dev.pdserve.core.grpc.GrpcServer;
import dev.pdserve.core.grpc.GrpcSwitchExecutor;
import dev.pdserve.core.grpc.NodeStatusService;
import dev.pdserve.core.grpc.RoleGrpcService;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvEndpoint;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.kv.flight.KvTransferClient;
import dev.pdserve.core.kv.flight.KvTransferServer;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.core.metrics.KvPoolMetrics;
import dev.pdserve.core.metrics.MetricNames;
import dev.pdserve.core.metrics.NodeMetrics;
import dev.pdserve.core.metrics.RemoteExpertsMetrics;
import dev.pdserve.core.metrics.RoleChangeMetrics;
import dev.pdserve.decode.DecodeEngine;
import dev.pdserve.decode.DecodeOptions;
import dev.pdserve.decode.DecodeResources;
import dev.pdserve.decode.DecodeStats;
import dev.pdserve.decode.grpc.DecodeGrpcService;
import dev.pdserve.decode.grpc.GrpcMigrationTargets;
import dev.pdserve.decode.metrics.PrometheusDecodeMetrics;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.model.engine.ExpertBackend;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.LocalExperts;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.ModelWeights;
import dev.pdserve.prefill.PrefillEngine;
import dev.pdserve.prefill.PrefillEngineSettings;
import dev.pdserve.prefill.PrefillOptions;
import dev.pdserve.prefill.PrefillStats;
import dev.pdserve.prefill.grpc.PrefillGrpcService;
import dev.pdserve.prefill.metrics.PrometheusPrefillMetrics;
import java.io.IOException;
import java.time.Duration;
import java.util.function.UnaryOperator;
import org.apache.arrow.flight.Location;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * A worker process: model weights (attention, gates, shared experts, embeddings, LM head), one
 * paged KV pool, the Flight KV endpoint, and both role services — prefill and decode. Which role it
 * serves is its entry in the registry. Wiring only: the roles live in their modules.
 */
public final class WorkerNode implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(WorkerNode.class);

  private final NodeConfig config;
  private final Closer closer = new Closer();
  private final ClusterMember member;
  private final NodeRegistry registry;
  private final LoadedModel model;
  private final KvBlockPool pool;
  private final KvTransferServer transferServer;
  private final PrefillEngine prefill;
  private final DecodeEngine decode;
  private final GrpcServer server;
  private final RegistryPresence presence;
  private final NodeMetrics metrics;
  private final PrometheusPrefillMetrics prefillMetrics;
  private final RoleChangeMetrics roleChanges;
  private final String grpcAddress;
  private final String flightAddress;

  /** The role this worker serves now (its registry role once a switch completes). */
  private volatile NodeRole role;

  private final RoleSwitcher switcher;
  private final RoleCoordinator coordinator; // null when coordinator.enabled is false
  private final GrpcMigrationTargets migrationTargets;
  private final KvTransferClient kvClient;

  /** Set when the shutdown drain begins: health NOT_SERVING, nothing accepted any more. */
  private volatile boolean shuttingDown;

  private volatile boolean registered; // ACTIVE in the registry since start
  private final DrainListeners drainListeners = new DrainListeners();
  private final Object healthLock = new Object();
  private final Object drainLock = new Object();
  private DrainSummary drained; // guarded by drainLock

  /**
   * Starts a worker; {@code allocator} is the process's Arrow root (a child is used and closed).
   */
  public static WorkerNode start(
      NodeConfig config, BufferAllocator allocator, ExpertBackendFactory experts)
      throws IOException {
    return new WorkerNode(config, allocator, experts);
  }

  /** How a worker gets its routed experts. */
  @FunctionalInterface
  public interface ExpertBackendFactory {
    ExpertBackend create(
        NodeConfig config,
        LoadedModel model,
        ModelWeights weights,
        ClusterMember member,
        Closer closer);

    /** This factory's backend passed through {@code wrap} (tests put a gate around it). */
    default ExpertBackendFactory andThen(UnaryOperator<ExpertBackend> wrap) {
      return (cfg, model, weights, member, closer) ->
          wrap.apply(create(cfg, model, weights, member, closer));
    }

    /** Every expert in the worker's process, or on shards when the config says remote. */
    static ExpertBackendFactory fromConfig() {
      return (cfg, model, weights, member, closer) -> {
        if (cfg.engine().expertsMode() == ExpertsMode.REMOTE) {
          return RemoteExpertsWiring.create(cfg, model, member, closer);
        }
        ExpertCompute compute =
            closer.add(
                new ExpertCompute(
                    model.config(), weights, OrtRuntime.shared(), ExpertCompute.HostedExperts.ALL));
        return new LocalExperts(compute);
      };
    }
  }

  private WorkerNode(NodeConfig config, BufferAllocator allocator, ExpertBackendFactory experts)
      throws IOException {
    this.config = config;
    boolean ok = false;
    // Threads the worker's components start log under its node id.
    try (var logContext = LogContext.node(config.nodeId())) {
      if (config.role() != NodeRole.PREFILL && config.role() != NodeRole.DECODE) {
        throw new IllegalArgumentException(
            "a worker's role must be prefill or decode, got " + config.role());
      }
      this.member = closer.add(ClusterMember.start(config));
      this.registry = closer.add(new NodeRegistry(member.hazelcast()));
      this.model = closer.add(LoadedModel.load(NodeModels.spec(config)));
      OrtRuntime rt =
          OrtRuntime.shared(
              new OrtRuntime.RuntimeOptions(
                  config.engine().ortThreads(), config.engine().ortCuda(), true));
      ModelWeights weights = closer.add(new ModelWeights(model.config(), model.weights(), rt));
      ModelRunner runner = closer.add(new ModelRunner(model.config(), weights, rt));
      ExpertBackend backend = experts.create(config, model, weights, member, closer);
      this.metrics = closer.add(new NodeMetrics(config, model.config().name()));
      this.prefillMetrics = new PrometheusPrefillMetrics(metrics);
      PrometheusDecodeMetrics decodeMetrics = new PrometheusDecodeMetrics(metrics);
      this.roleChanges = new RoleChangeMetrics(metrics);
      if (backend instanceof RemoteExperts remote) {
        RemoteExpertsMetrics.register(metrics, remote.metrics());
      }
      BufferAllocator mine =
          closer.add(allocator.newChildAllocator("worker-" + config.nodeId(), 0, Long.MAX_VALUE));
      KvLayout layout = KvLayout.of(model.config());
      this.pool =
          closer.add(new KvBlockPool(mine, "kv-pool", layout, config.engine().kvBudgetBytes()));
      this.transferServer =
          closer.add(
              new KvTransferServer(
                  mine,
                  pool,
                  Location.forGrpcInsecure(
                      config.network().bindHost(), config.network().flightPort())));
      transferServer.start();
      KvTransferClient client = closer.add(new KvTransferClient(mine, layout));
      this.kvClient = client;
      Channels channels = closer.add(new Channels(Channels.Settings.forNode(config)));
      this.prefill =
          closer.add(
              new PrefillEngine(
                  PrefillEngineSettings.builder(runner, backend, pool, client, model.tokenizer())
                      .options(
                          new PrefillOptions(
                              config.engine().prefillChunkTokens(),
                              Math.max(2048, config.engine().prefillChunkTokens())))
                      .metrics(prefillMetrics)
                      .prefixHasher(
                          config.prefix().prefixCache() ? NodeModels.prefixHasher(model) : null)
                      .build()));
      this.decode =
          closer.add(
              new DecodeEngine(
                  new DecodeResources(runner, backend, pool, transferServer, model.tokenizer()),
                  new DecodeOptions(
                      config.engine().decodeMaxBatch(),
                      Duration.ofSeconds(60),
                      Duration.ofSeconds(120),
                      Duration.ofSeconds(config.prefix().leaseSeconds())),
                  decodeMetrics,
                  Ticker.systemTicker()));
      decodeMetrics.bind(decode);
      KvPoolMetrics.register(metrics, pool);
      metrics.gauge(
          MetricNames.NUM_REQUESTS_RUNNING,
          "Number of requests this worker is working on: decoding, plus prefills holding KV (computing or handing their KV over).",
          () -> decode.stats().running() + prefill.runningJobs());
      metrics.gauge(
          MetricNames.NUM_REQUESTS_WAITING,
          "Number of requests waiting on this worker: prefills not started, plus joined requests whose KV has not fully arrived.",
          () -> decode.stats().waitingForKv() + prefill.waitingJobs());
      metrics.start();
      this.role = config.role();
      roleChanges.serving(role.name().toLowerCase(java.util.Locale.ROOT));
      prefill.setAccepting(role == NodeRole.PREFILL);
      decode.setAccepting(role == NodeRole.DECODE);
      GrpcMigrationTargets targets =
          new GrpcMigrationTargets(
              config.nodeId(), () -> registry.activeNodes(NodeRole.DECODE), channels);
      this.migrationTargets = targets;
      this.switcher =
          new RoleSwitcher(
              registry,
              config.nodeId(),
              new Engines(targets, client),
              config.coordinator().drainTimeout(),
              Ticker.systemTicker());
      switcher.addListener(
          r -> {
            if (r.accepted()) {
              role = r.to();
              roleChanges.serving(r.to().name().toLowerCase(java.util.Locale.ROOT));
              updateHealth();
              roleChanges.roleSwitched(
                  r.from().name().toLowerCase(java.util.Locale.ROOT),
                  r.to().name().toLowerCase(java.util.Locale.ROOT),
                  r.durationMillis());
              roleChanges.migrated(r.migrated());
            } else {
              roleChanges.switchRefused();
            }
          });
      String host = config.network().advertisedHost();
      this.server =
          closer.add(
              GrpcServer.forNode(config)
                  .name(config.nodeId())
                  // NOT_SERVING until registered ACTIVE (updateHealth); known from the start
                  .healthService(NodeRole.WORKER_HEALTH_SERVICE, false)
                  .healthService(NodeRole.PREFILL.healthServiceName(), false)
                  .healthService(NodeRole.DECODE.healthServiceName(), false)
                  .addService(new PrefillGrpcService(prefill))
                  .addService(
                      new DecodeGrpcService(
                          decode, () -> new KvEndpoint(host, transferServer.port())))
                  .addService(new NodeStatusService(this::status))
                  .addService(new RoleGrpcService(switcher))
                  .build());
      server.start();
      this.grpcAddress = host + ":" + server.port();
      this.flightAddress = host + ":" + transferServer.port();
      this.presence =
          closer.add(
              new RegistryPresence(
                  registry,
                  config.nodeId(),
                  () -> role,
                  grpcAddress,
                  flightAddress,
                  metrics.url(),
                  this::load,
                  200));
      registered = true;
      updateHealth();
      this.coordinator =
          config.coordinator().enabled()
              ? closer.add(
                  new RoleCoordinator(
                      member.hazelcast(),
                      registry,
                      config.nodeId(),
                      RoleCoordinator.Timing.every(config.coordinator().period()),
                      CoordinatorWiring.planner(config),
                      new GrpcSwitchExecutor(
                          channels, config.coordinator().drainTimeout().plusSeconds(30))))
              : null;
      LOG.info(
          "worker {} ({}) serving gRPC at {}, KV Flight at {}, metrics at {}, {} KV blocks of {} tokens",
          config.nodeId(),
          config.role(),
          grpcAddress,
          flightAddress,
          metrics.url(),
          pool.totalBlocks(),
          layout.blockSize());
      ok = true;
    } finally {
      if (!ok) {
        closer.close();
      }
    }
  }

  /** The worker's engines as the switch protocol drives them. */
  private final class Engines implements RoleEngines {
    private final GrpcMigrationTargets targets;
    private final KvTransferClient client;

    Engines(GrpcMigrationTargets targets, KvTransferClient client) {
      this.targets = targets;
      this.client = client;
    }

    @Override
    public void setAccepting(NodeRole r, boolean accepting) {
      if (accepting && shuttingDown) {
        return; // a switch that was under way when the drain began: take nothing new
      }
      if (r == NodeRole.PREFILL) {
        prefill.setAccepting(accepting);
      } else if (r == NodeRole.DECODE) {
        decode.setAccepting(accepting);
      }
    }

    @Override
    public DrainReport drain(NodeRole r, Duration timeout) {
      return r == NodeRole.PREFILL
          ? prefill.drain(timeout)
          : decode.drain(targets, client, timeout);
    }
  }

  private Load load() {
    PrefillStats p = prefill.stats();
    DecodeStats d = decode.stats();
    // Cached prefix blocks are given back on demand: they count as free for routing.
    return new Load(
        p.queuedPromptTokens(),
        d.running() + d.waitingForKv(),
        pool.availableBlocks(),
        pool.totalBlocks(),
        role == NodeRole.DECODE ? d.lastStepMillis() : p.lastStepMillis());
  }

  public NodeStatus status() {
    NodeInfo reg = registry.get(config.nodeId()).orElse(presence.current());
    DecodeStats d = decode.stats();
    PrefillStats p = prefill.stats();
    return NodeStatus.newBuilder()
        .setId(config.nodeId())
        .setRole(reg.role().name().toLowerCase())
        .setState(reg.state().name())
        .setEpoch(reg.epoch())
        .setGrpcAddress(grpcAddress)
        .setFlightAddress(flightAddress)
        .setMetricsUrl(metrics.url())
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
    return r.from().name().toLowerCase()
        + "->"
        + r.to().name().toLowerCase()
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
    return role;
  }

  public RoleSwitcher switcher() {
    return switcher;
  }

  /** The coordinator runtime, if this worker runs one (it leads only when elected). */
  public java.util.Optional<RoleCoordinator> coordinator() {
    return java.util.Optional.ofNullable(coordinator);
  }

  public NodeConfig config() {
    return config;
  }

  public String id() {
    return config.nodeId();
  }

  public String grpcAddress() {
    return grpcAddress;
  }

  public KvBlockPool pool() {
    return pool;
  }

  public DecodeEngine decode() {
    return decode;
  }

  public PrefillEngine prefill() {
    return prefill;
  }

  public ClusterMember member() {
    return member;
  }

  /** This worker's metrics registry and {@code /metrics} endpoint. */
  public NodeMetrics metrics() {
    return metrics;
  }

  /** Where prefix cache lookups are counted ({@code vllm:prefix_cache_queries} / {@code _hits}). */
  public PrometheusPrefillMetrics prefillMetrics() {
    return prefillMetrics;
  }

  /** Where role switches and migrations of this worker are counted. */
  public RoleChangeMetrics roleChanges() {
    return roleChanges;
  }

  /**
   * Health names from the worker's state: {@code pdserve.worker} SERVING from registration until
   * the shutdown drain begins, whatever the role; {@code pdserve.prefill} / {@code pdserve.decode}
   * SERVING only for the role it serves now. The overall service {@code ""} is the server's own
   * (SERVING until the server stops).
   */
  private void updateHealth() {
    synchronized (healthLock) {
      boolean up = registered && !shuttingDown;
      NodeRole r = role;
      server.setServing(NodeRole.WORKER_HEALTH_SERVICE, up);
      server.setServing(NodeRole.PREFILL.healthServiceName(), up && r == NodeRole.PREFILL);
      server.setServing(NodeRole.DECODE.healthServiceName(), up && r == NodeRole.DECODE);
    }
  }

  /**
   * Calls {@code listener} with each step of the shutdown drain as it begins (on the draining
   * thread, before the step runs).
   */
  public void onDrainPhase(java.util.function.Consumer<DrainPhase> listener) {
    drainListeners.add(listener);
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
    synchronized (drainLock) {
      if (drained == null) {
        drained = drain(timeout, migrateAfter);
      }
      return drained;
    }
  }

  private DrainSummary drain(Duration timeout, Duration migrateAfter) {
    long t0 = System.nanoTime();
    Deadline deadline = Deadline.after(timeout);
    Deadline migrateAt =
        Deadline.after(migrateAfter.compareTo(timeout) < 0 ? migrateAfter : timeout);
    try (var logContext = LogContext.node(config.nodeId())) {
      shuttingDown = true;
      updateHealth();
      DecodeStats d0 = decode.stats();
      int running = d0.running() + prefill.runningJobs();
      int queued = d0.waitingForKv() + prefill.waitingJobs();
      LOG.info(
          "draining: {} running, {} queued, timeout {} ms (worker {}, role {})",
          running,
          queued,
          timeout.toMillis(),
          config.nodeId(),
          role.name().toLowerCase(java.util.Locale.ROOT));
      switcher.refuseFurtherSwitches("node " + config.nodeId() + " is shutting down");
      if (coordinator != null) {
        coordinator.close();
      }
      presence.leave();
      prefill.setAccepting(false);
      decode.setAccepting(false);
      phase(DrainPhase.DRAINING);
      WorkerDrain.Outcome outcome =
          WorkerDrain.run(
              config.nodeId(),
              prefill,
              decode,
              migrationTargets,
              kvClient,
              deadline,
              migrateAt,
              () -> phase(DrainPhase.MIGRATING));
      phase(DrainPhase.CLOSING);
      presence.close(); // deregistered
      int failed = decode.stats().reservations() + prefill.stats().queuedJobs();
      decode.close(); // what is left ends with UNAVAILABLE, its KV freed
      prefill.close();
      server.close(deadline.remaining(Duration.ofSeconds(1), GrpcServer.DEFAULT_SHUTDOWN_GRACE));
      closer.close();
      DrainSummary summary =
          new DrainSummary(
              config.nodeId(),
              running,
              queued,
              outcome.finished(),
              outcome.migrated(),
              failed,
              (System.nanoTime() - t0) / 1_000_000);
      LOG.info(summary.describe());
      return summary;
    }
  }

  private void phase(DrainPhase p) {
    drainListeners.fire(p);
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
    server.close(Duration.ZERO);
    transferServer.close();
    member.hazelcast().getLifecycleService().terminate();
    closer.close();
  }

  /** Closes at once: running work ends with UNAVAILABLE. {@link #drainAndClose} drains first. */
  @Override
  public void close() {
    closer.close();
  }
}
