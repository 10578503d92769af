package dev.pdserve.launcher.node;

import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.coordination.DrainReport;
import dev.pdserve.core.grpc.Channels;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.kv.flight.KvTransferClient;
import dev.pdserve.core.kv.flight.KvTransferServer;
import dev.pdserve.core.metrics.ArrowMemoryMetrics;
import dev.pdserve.core.metrics.KvPoolMetrics;
import dev.pdserve.core.metrics.MetricNames;
import dev.pdserve.core.metrics.NodeMetrics;
import dev.pdserve.decode.DecodeEngine;
import dev.pdserve.decode.DecodeOptions;
import dev.pdserve.decode.DecodeResources;
import dev.pdserve.decode.DecodeStats;
import dev.pdserve.decode.grpc.GrpcMigrationTargets;
import dev.pdserve.decode.metrics.PrometheusDecodeMetrics;
import dev.pdserve.launcher.node.Closer.Stage;
import dev.pdserve.model.engine.ExpertBackend;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.vision.EncoderCache;
import dev.pdserve.model.vision.VisionEncoder;
import dev.pdserve.prefill.PrefillEngine;
import dev.pdserve.prefill.PrefillEngineSettings;
import dev.pdserve.prefill.PrefillOptions;
import dev.pdserve.prefill.PrefillStats;
import dev.pdserve.prefill.metrics.PrometheusPrefillMetrics;
import java.io.IOException;
import java.time.Duration;
import org.apache.arrow.flight.Location;
import org.apache.arrow.memory.BufferAllocator;

/**
 * A worker's two engines and what they share: a child of the process's Arrow allocator, one paged
 * KV pool, the Flight KV endpoint (server and client), the prefill and decode engines on the node's
 * clock, their metrics (the Arrow allocator's bytes among them), and the decode nodes a draining
 * sequence can move to. Both engines exist whatever the role; the role decides which one accepts
 * work. Everything is owned by the node's runtime and closes in its stage.
 */
final class WorkerEngines {
  private final KvLayout layout;
  private final KvBlockPool pool;
  private final KvTransferServer transferServer;
  private final KvTransferClient kvClient;
  private final GrpcMigrationTargets migrationTargets;
  private final PrometheusPrefillMetrics prefillMetrics;
  private final PrefillEngine prefill;
  private final DecodeEngine decode;

  /**
   * Starts the engines and the KV endpoint (the gRPC services are the caller's to add).
   *
   * @param allocator the process's Arrow root: a child of it is used, and closed last
   * @param channels where migrations reach other decode nodes
   * @param vision the image encoder both roles use (a vision model only), else null
   */
  WorkerEngines(
      NodeRuntime node,
      BufferAllocator allocator,
      ModelRunner runner,
      ExpertBackend experts,
      Channels channels,
      VisionEncoder vision)
      throws IOException {
    NodeConfig config = node.config();
    LoadedModel model = node.model();
    NodeMetrics metrics = node.metrics();
    BufferAllocator mine =
        node.own(
            Stage.MEMORY,
            "worker-allocator",
            allocator.newChildAllocator("worker-" + config.nodeId(), 0, Long.MAX_VALUE));
    this.layout = KvLayout.of(model.config(), runner.numerics().kvDtype());
    this.pool =
        node.own(
            Stage.RESOURCES,
            "kv-pool",
            new KvBlockPool(mine, "kv-pool", layout, config.engine().kvBudgetBytes()));
    this.transferServer =
        node.own(
            Stage.ENDPOINTS,
            "kv-transfer-server",
            new KvTransferServer(
                mine,
                pool,
                Location.forGrpcInsecure(
                    config.network().bindHost(), config.network().flightPort()),
                KvTransferServer.Options.DEFAULTS,
                node.security()));
    transferServer.start();
    Duration transferTimeout = config.serving().kvTransferTimeout();
    this.kvClient =
        node.own(
            Stage.RESOURCES,
            "kv-transfer-client",
            new KvTransferClient(
                mine,
                layout,
                KvTransferClient.Options.DEFAULTS.withTimeout(transferTimeout),
                node.security()));
    this.prefillMetrics = new PrometheusPrefillMetrics(metrics);
    // Both roles encode images with one encoder and share one cache of encoded images.
    EncoderCache encoderCache =
        vision == null ? null : new EncoderCache(config.engine().encoderCacheBytes());
    this.migrationTargets =
        new GrpcMigrationTargets(
            config.nodeId(), () -> node.registry().activeNodes(NodeRole.DECODE), channels);
    this.prefill =
        node.own(
            Stage.WORK,
            "prefill-engine",
            new PrefillEngine(
                PrefillEngineSettings.builder(runner, experts, pool, kvClient, model.tokenizer())
                    .options(
                        new PrefillOptions(
                            config.engine().prefillChunkTokens(),
                            Math.max(2048, config.engine().prefillChunkTokens())))
                    .metrics(prefillMetrics)
                    .prefixHasher(
                        config.prefix().prefixCache() ? NodeModels.prefixHasher(model) : null)
                    .vision(vision, encoderCache)
                    .ticker(node.ticker())
                    .build()));
    PrometheusDecodeMetrics decodeMetrics = new PrometheusDecodeMetrics(metrics);
    this.decode =
        node.own(
            Stage.WORK,
            "decode-engine",
            new DecodeEngine(
                new DecodeResources(
                    runner, experts, pool, transferServer, model.tokenizer(), vision, encoderCache),
                new DecodeOptions(
                    config.engine().decodeMaxBatch(),
                    transferTimeout,
                    // a reservation outlives the handoff it waits for
                    max(Duration.ofSeconds(120), transferTimeout.multipliedBy(2)),
                    Duration.ofSeconds(config.prefix().leaseSeconds())),
                decodeMetrics,
                node.ticker()));
    decodeMetrics.bind(decode);
    KvPoolMetrics.register(metrics, pool);
    ArrowMemoryMetrics.register(metrics, mine);
    metrics.gauge(
        MetricNames.NUM_REQUESTS_RUNNING,
        "Number of requests this worker is working on: decoding, plus prefills holding KV (computing or handing their KV over).",
        () -> decode.stats().running() + prefill.runningJobs());
    metrics.gauge(
        MetricNames.NUM_REQUESTS_WAITING,
        "Number of requests waiting on this worker: prefills not started, plus joined requests whose KV has not fully arrived.",
        () -> decode.stats().waitingForKv() + prefill.waitingJobs());
  }

  KvLayout layout() {
    return layout;
  }

  KvBlockPool pool() {
    return pool;
  }

  /** Where prefix cache lookups are counted. */
  PrometheusPrefillMetrics prefillMetrics() {
    return prefillMetrics;
  }

  PrefillEngine prefill() {
    return prefill;
  }

  DecodeEngine decode() {
    return decode;
  }

  /** The Flight KV endpoint's port. */
  int flightPort() {
    return transferServer.port();
  }

  /** Where pushed KV is received into the pool (the decode service's intake). */
  KvTransferServer kvIntake() {
    return transferServer;
  }

  /** Lets the engine of {@code role} take new work, or not. */
  void setAccepting(NodeRole role, boolean accepting) {
    if (role == NodeRole.PREFILL) {
      prefill.setAccepting(accepting);
    } else if (role == NodeRole.DECODE) {
      decode.setAccepting(accepting);
    }
  }

  /**
   * Drains the engine of {@code role} within {@code timeout}: prefills finish and hand their KV
   * over; decode sequences move to other ACTIVE decode nodes.
   */
  DrainReport drain(NodeRole role, Duration timeout) {
    return role == NodeRole.PREFILL ? prefill.drain(timeout) : migrateDecode(timeout);
  }

  /** Decode sequences run on here (none moves) for up to {@code timeout}. */
  DrainReport finishDecode(Duration timeout) {
    return decode.drain(null, null, timeout);
  }

  /** Decode sequences move to other ACTIVE decode nodes over Flight, within {@code timeout}. */
  DrainReport migrateDecode(Duration timeout) {
    return decode.drain(migrationTargets, kvClient, timeout);
  }

  /** Requests decoding or prefilling (holding KV), and waiting (not started, or KV on the way). */
  NodeDrain.Held held() {
    DecodeStats d = decode.stats();
    return new NodeDrain.Held(
        d.running() + prefill.runningJobs(), d.waitingForKv() + prefill.waitingJobs());
  }

  /** What would end with UNAVAILABLE if the engines closed now. */
  int unfinished() {
    return decode.stats().reservations() + prefill.stats().queuedJobs();
  }

  /** The load figures the registry entry carries, for a worker serving {@code role}. */
  Load load(NodeRole role) {
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

  private static Duration max(Duration a, Duration b) {
    return a.compareTo(b) >= 0 ? a : b;
  }
}
