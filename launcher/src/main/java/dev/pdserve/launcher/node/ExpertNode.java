package dev.pdserve.launcher.node;

import dev.pdserve.core.cluster.ClusterMember;
import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.core.cluster.ExpertPlacementStore;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.config.ExpertRange;
import dev.pdserve.core.config.NodeConfig;
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
      ExpertShard shard = ExpertShard.forNode(config, weights, rt, shardMetrics);
      shardMetrics.bind(shard);
      metrics.start();
      ExpertRange range =
          config.engine().expertRange().orElse(new ExpertRange(0, maxExperts(model) - 1));
      ExpertShardServer server =
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

  @Override
  public void close() {
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
    closer.close();
  }
}
