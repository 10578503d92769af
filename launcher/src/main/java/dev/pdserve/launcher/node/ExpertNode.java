package dev.pdserve.launcher.node;

import com.google.common.base.Ticker;
import dev.pdserve.core.cluster.ClusterMember;
import dev.pdserve.core.cluster.ExpertPlacementStore;
import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.config.ExpertRange;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.experts.PlacementPruner;
import dev.pdserve.core.metrics.NodeMetrics;
import dev.pdserve.expert.ExpertShard;
import dev.pdserve.expert.grpc.ExpertShardServer;
import dev.pdserve.expert.metrics.PrometheusShardMetrics;
import dev.pdserve.launcher.node.Closer.Stage;
import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.ModelConfig;
import java.io.IOException;
import java.time.Duration;
import java.util.function.Consumer;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * An expert shard process: hosts a range of routed experts (of every MoE layer, both groups),
 * serves expert dispatch, and adds itself to the versioned expert placement in the registry
 * (removing itself again when it stops). Wiring only: the common parts are {@link NodeRuntime}'s.
 */
public final class ExpertNode implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(ExpertNode.class);

  private final NodeRuntime node;
  private final ExpertRange range;
  private final ExpertShard shard;
  private final ShardPlacement placement;

  public static ExpertNode start(NodeConfig config) throws IOException {
    return start(config, Ticker.systemTicker());
  }

  /** As above, deciding its drain's bounds and waits on {@code ticker}. */
  public static ExpertNode start(NodeConfig config, Ticker ticker) throws IOException {
    return NodeRuntime.start(ExpertNode.class, config, ticker, ExpertNode::new);
  }

  private ExpertNode(NodeRuntime node) throws IOException {
    this.node = node;
    NodeConfig config = node.config();
    ModelConfig model = node.model().config();
    PrometheusShardMetrics shardMetrics = new PrometheusShardMetrics(node.metrics());
    // pdserve.expert.range, else this node's part of pdserve.expert.shard-count, else all
    this.range = config.expertRange(maxExperts(model));
    NodeMemory.requireShardFits(config, model, range);
    this.shard =
        node.own(
            Stage.RESOURCES,
            "expert-shard",
            new ExpertShard(
                config.nodeId(),
                range,
                node.loadWeights(),
                node.ort(),
                shardMetrics,
                node.ticker()));
    shardMetrics.bind(shard);
    node.metrics().start();
    // Closing the shard server is closing its gRPC server, which the runtime owns.
    ExpertShardServer server =
        new ExpertShardServer(
            shard,
            node.serverBuilder(),
            ExpertShardServer.DEFAULT_MAX_INBOUND_BYTES,
            node.metrics().url());
    node.serve(server.grpc());
    // Registered (with its address) before it enters the placement, so callers can reach it.
    node.register(config::role, "", () -> Load.IDLE, Duration.ofSeconds(1));
    this.placement =
        node.own(
            Stage.PRESENCE,
            "expert-placement",
            ShardPlacement.publish(
                new ExpertPlacementStore(node.member().hazelcast()),
                node.registry(),
                model,
                config.nodeId(),
                range));
    // Another shard that crashed never withdraws: take it out once it left the cluster.
    node.own(
        Stage.PRESENCE,
        "placement-pruner",
        PlacementPruner.start(
            node.registry(), new ExpertPlacementStore(node.member().hazelcast()), node.id()));
    LOG.info(
        "expert shard {} hosts experts {} at {}, metrics at {} (placement version {})",
        config.nodeId(),
        range,
        node.grpcAddress(),
        node.metrics().url(),
        placement.version());
  }

  private static int maxExperts(ModelConfig model) {
    return model.expertGroups().stream().mapToInt(ExpertGroup::numExperts).max().orElse(1);
  }

  public String grpcAddress() {
    return node.grpcAddress();
  }

  public ClusterMember member() {
    return node.member();
  }

  public String id() {
    return node.id();
  }

  /** The shard's metrics registry and {@code /metrics} endpoint. */
  public NodeMetrics metrics() {
    return node.metrics();
  }

  /** The expert indices this shard hosts (of every MoE layer and group). */
  public ExpertRange range() {
    return range;
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
   * pdserve.expert} goes NOT_SERVING (the overall health stays SERVING), the registry entry
   * DRAINING, the shard leaves the expert placement (callers switch to other shards between steps);
   * dispatches already running finish — it waits until none has run or arrived for a moment — then
   * the node deregisters and closes. Idempotent.
   */
  public DrainSummary drainAndClose(Duration timeout) {
    return node.drainAndClose(timeout, ShardDrain::new);
  }

  /**
   * Dies as a killed process would (for tests): the gRPC server stops at once, the Hazelcast member
   * vanishes without leaving (no withdrawal from the placement, no deregistration), then the rest
   * is released.
   */
  public void crash() {
    node.server().close(Duration.ZERO);
    node.member().hazelcast().getLifecycleService().terminate();
    node.close();
  }

  /**
   * Closes at once (running dispatches get the gRPC grace period): out of the placement, out of the
   * registry, the server stopped, the shard's sessions closed, the member gone.
   */
  @Override
  public void close() {
    node.close();
  }

  /** The expert shard's steps of the drain. */
  private final class ShardDrain implements NodeDrain {
    @Override
    public String describe() {
      return "expert shard " + node.id() + ", experts " + range;
    }

    @Override
    public void stopServing() {
      node.server().setServing(NodeRole.EXPERT.healthServiceName(), false);
    }

    @Override
    public Held held() {
      return new Held(shard.running(), 0);
    }

    @Override
    public void refuseNewWork() {
      node.closeNow(placement); // withdrawn: callers pick other shards from their next step on
    }

    @Override
    public void awaitWork(Deadline deadline, Runnable migrating) {
      QuietWait.onClock(node.ticker()).await(deadline, shard::running, shard::arrivals);
    }

    @Override
    public Tally tally(Held atStart) {
      return Tally.allButFailed(atStart, shard.running());
    }
  }
}
