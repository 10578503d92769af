package dev.pdserve.launcher.node;

import com.google.common.base.Ticker;
import dev.pdserve.core.cluster.ClusterMember;
import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.core.cluster.ExpertPlacementStore;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.config.ExpertRange;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.grpc.GrpcServer;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.core.metrics.NodeMetrics;
import dev.pdserve.expert.ExpertShard;
import dev.pdserve.expert.grpc.ExpertShardServer;
import dev.pdserve.expert.metrics.PrometheusShardMetrics;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.ModelWeights;
import java.io.IOException;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * An expert shard process: hosts a range of routed experts (of every MoE layer, both groups),
 * serves expert dispatch, and adds itself to the versioned expert placement in the registry
 * (removing itself again when it stops). Wiring only.
 */
public final class ExpertNode implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(ExpertNode.class);

  private final NodeConfig config;
  private final Closer closer = new Closer();
  private final NodeRegistry registry;
  private final ClusterMember member;
  private final ExpertPlacementStore placements;
  private final NodeMetrics metrics;
  private final String grpcAddress;
  private final ExpertRange range;
  private final ExpertShard shard;
  private final ExpertShardServer server;
  private final RegistryPresence presence;
  private final DrainListeners drainListeners = new DrainListeners();
  private final Object drainLock = new Object();
  private DrainSummary drained; // guarded by drainLock

  public static ExpertNode start(NodeConfig config) throws IOException {
    return new ExpertNode(config);
  }

  private ExpertNode(NodeConfig config) throws IOException {
    this.config = config;
    boolean ok = false;
    // Threads the shard's components start log under its node id.
    try (var logContext = LogContext.node(config.nodeId())) {
      this.member = closer.add(ClusterMember.start(config));
      this.registry = closer.add(new NodeRegistry(member.hazelcast()));
      this.placements = new ExpertPlacementStore(member.hazelcast());
      LoadedModel model = closer.add(LoadedModel.load(NodeModels.spec(config)));
      OrtRuntime rt =
          OrtRuntime.shared(
              new OrtRuntime.RuntimeOptions(
                  config.engine().ortThreads(), config.engine().ortCuda(), true));
      ModelWeights weights = closer.add(new ModelWeights(model.config(), model.weights(), rt));
      this.metrics = closer.add(new NodeMetrics(config, model.config().name()));
      PrometheusShardMetrics shardMetrics = new PrometheusShardMetrics(metrics);
      // pdserve.expert.range, else this node's part of pdserve.expert.shard-count, else all
      this.range = config.expertRange(maxExperts(model));
      // Not in the closer, as before: closing its sessions here shifted this member's leave enough
      // to expose a 120 s Hazelcast listener-deregistration stall when a test closes every node of
      // an in-JVM cluster at once (ClusterObservabilityTest). The process ends with it anyway.
      this.shard =
          new ExpertShard(config.nodeId(), range, weights, rt, shardMetrics, Ticker.systemTicker());
      shardMetrics.bind(shard);
      metrics.start();
      this.server =
          closer.add(
              new ExpertShardServer(
                  shard,
                  GrpcServer.forNode(config)
                      .name(config.nodeId())
                      .healthService(config.role().healthServiceName()),
                  ExpertShardServer.DEFAULT_MAX_INBOUND_BYTES,
                  metrics.url()));
      server.start();
      this.grpcAddress = config.network().advertisedHost() + ":" + server.port();
      // Registered (with its address) before it enters the placement, so callers can reach it.
      this.presence =
          closer.add(
              new RegistryPresence(
                  registry,
                  config.nodeId(),
                  config.role(),
                  grpcAddress,
                  "",
                  metrics.url(),
                  () -> dev.pdserve.core.cluster.Load.IDLE,
                  1000));
      // Publish the placement with this shard in it (compare-and-set on the version; retry on
      // races).
      ExpertPlacement published = null;
      for (int attempt = 0; attempt < 100 && published == null; attempt++) {
        ExpertPlacement cur = placements.current().orElse(new ExpertPlacement(0, Map.of()));
        Optional<ExpertPlacement> next =
            placements.publishAfter(
                cur.version(), cur.withShard(model.config(), config.nodeId(), range));
        published = next.orElse(null);
      }
      if (published == null) {
        throw new IllegalStateException(
            "could not publish the expert placement with shard "
                + config.nodeId()
                + " after 100 attempts");
      }

      LOG.info(
          "expert shard {} hosts experts {} at {}, metrics at {} (placement version {})",
          config.nodeId(),
          range,
          grpcAddress,
          metrics.url(),
          published.version());
      ok = true;
    } finally {
      if (!ok) {
        closer.close();
      }
    }
  }

  private static int maxExperts(LoadedModel model) {
    return model.config().expertGroups().stream().mapToInt(g -> g.numExperts()).max().orElse(1);
  }

  public String grpcAddress() {
    return grpcAddress;
  }

  public ClusterMember member() {
    return member;
  }

  public String id() {
    return config.nodeId();
  }

  /** The shard's metrics registry and {@code /metrics} endpoint. */
  public NodeMetrics metrics() {
    return metrics;
  }

  /** The expert indices this shard hosts (of every MoE layer and group). */
  public ExpertRange range() {
    return range;
  }

  /**
   * Calls {@code listener} with each step of the shutdown drain as it begins (on the draining
   * thread).
   */
  public void onDrainPhase(java.util.function.Consumer<DrainPhase> listener) {
    drainListeners.add(listener);
  }

  private void phase(DrainPhase p) {
    drainListeners.fire(p);
  }

  /**
   * Graceful shutdown, bounded by {@code timeout} (plus a few seconds to close): {@code
   * pdserve.expert} goes NOT_SERVING (the overall health stays SERVING), the registry entry
   * DRAINING, the shard leaves the expert placement (callers switch to other shards between steps);
   * dispatches already running finish — it waits until none has run or arrived for a moment — then
   * the node deregisters and closes. Idempotent.
   */
  public DrainSummary drainAndClose(Duration timeout) {
    synchronized (drainLock) {
      if (drained == null) {
        drained = drain(timeout);
      }
      return drained;
    }
  }

  private DrainSummary drain(Duration timeout) {
    long t0 = System.nanoTime();
    Deadline deadline = Deadline.after(timeout);
    try (var logContext = LogContext.node(config.nodeId())) {
      server.grpc().setServing(NodeRole.EXPERT.healthServiceName(), false);
      int running = shard.running();
      LOG.info(
          "draining: {} running, 0 queued, timeout {} ms (expert shard {}, experts {})",
          running,
          timeout.toMillis(),
          config.nodeId(),
          range);
      presence.leave();
      withdraw();
      phase(DrainPhase.DRAINING);
      // Callers may have read the placement just before it changed: wait until no dispatch has
      // run or arrived for QUIET (or the timeout).
      while (!deadline.passed() && !shard.quietFor(QUIET)) {
        try {
          Thread.sleep(10);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          break;
        }
      }
      phase(DrainPhase.CLOSING);
      int failed = shard.running();
      presence.close();
      server
          .grpc()
          .close(deadline.remaining(Duration.ofSeconds(1), GrpcServer.DEFAULT_SHUTDOWN_GRACE));
      closer.close();
      DrainSummary summary =
          new DrainSummary(
              config.nodeId(),
              running,
              0,
              Math.max(0, running - failed),
              0,
              failed,
              (System.nanoTime() - t0) / 1_000_000);
      LOG.info(summary.describe());
      return summary;
    }
  }

  private static final Duration QUIET = Duration.ofMillis(200);

  /** Closes at once (running dispatches get the gRPC grace period). */
  @Override
  public void close() {
    withdraw();
    closer.close();
  }

  /** Takes this shard out of the expert placement (compare-and-set on the version, retried). */
  private void withdraw() {
    try {
      for (int attempt = 0; attempt < 20; attempt++) {
        ExpertPlacement cur = placements.current().orElse(null);
        if (cur == null || !cur.shardIds().contains(config.nodeId())) {
          break;
        }
        if (placements.publishAfter(cur.version(), cur.withoutShard(config.nodeId())).isPresent()) {
          break;
        }
      }
    } catch (RuntimeException e) {
      LOG.debug("could not withdraw shard {}: {}", config.nodeId(), e.toString());
    }
  }
}
