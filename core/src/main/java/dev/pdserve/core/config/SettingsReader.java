package dev.pdserve.core.config;

import static dev.pdserve.core.config.ConfigKeys.ADVERTISED_HOST;
import static dev.pdserve.core.config.ConfigKeys.AUTH_API_KEYS_FILE;
import static dev.pdserve.core.config.ConfigKeys.AUTH_CLUSTER_TOKEN_FILE;
import static dev.pdserve.core.config.ConfigKeys.AUTH_HEALTH_OPEN;
import static dev.pdserve.core.config.ConfigKeys.AUTH_METRICS_OPEN;
import static dev.pdserve.core.config.ConfigKeys.BIND_HOST;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_FAILURE_DETECTOR;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_HEARTBEAT_SECONDS;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_JOIN;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_JOIN_WAIT_SECONDS;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_K8S_NAMESPACE;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_K8S_SERVICE;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_LITE_MEMBER;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_MAX_NO_HEARTBEAT_SECONDS;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_MEMBERS;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_MERGE_INTERVAL_SECONDS;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_MIN_SIZE;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_NAME;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_PHI_THRESHOLD;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_PORT;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_QUORUM_WINDOW_SECONDS;
import static dev.pdserve.core.config.ConfigKeys.COORDINATOR_ENABLED;
import static dev.pdserve.core.config.ConfigKeys.COORDINATOR_PERIOD_MS;
import static dev.pdserve.core.config.ConfigKeys.COORDINATOR_TPOT_TARGET_MS;
import static dev.pdserve.core.config.ConfigKeys.COORDINATOR_TTFT_TARGET_MS;
import static dev.pdserve.core.config.ConfigKeys.DECODE_MAX_BATCH;
import static dev.pdserve.core.config.ConfigKeys.EXPERTS_MODE;
import static dev.pdserve.core.config.ConfigKeys.EXPERT_RANGE;
import static dev.pdserve.core.config.ConfigKeys.EXPERT_SHARD_COUNT;
import static dev.pdserve.core.config.ConfigKeys.EXPERT_SHARD_INDEX;
import static dev.pdserve.core.config.ConfigKeys.FLIGHT_PORT;
import static dev.pdserve.core.config.ConfigKeys.GRPC_HEALTH_PORT;
import static dev.pdserve.core.config.ConfigKeys.GRPC_MAX_INBOUND_BYTES;
import static dev.pdserve.core.config.ConfigKeys.GRPC_PORT;
import static dev.pdserve.core.config.ConfigKeys.HTTP_MAX_BODY_BYTES;
import static dev.pdserve.core.config.ConfigKeys.HTTP_PORT;
import static dev.pdserve.core.config.ConfigKeys.KV_BUDGET_BYTES;
import static dev.pdserve.core.config.ConfigKeys.KV_DTYPE;
import static dev.pdserve.core.config.ConfigKeys.KV_FAILURE_POLICY;
import static dev.pdserve.core.config.ConfigKeys.KV_LEASE_SECONDS;
import static dev.pdserve.core.config.ConfigKeys.KV_TRANSFER_TIMEOUT;
import static dev.pdserve.core.config.ConfigKeys.METRICS_PORT;
import static dev.pdserve.core.config.ConfigKeys.MODEL_DIR;
import static dev.pdserve.core.config.ConfigKeys.MODEL_LOW_BIT_DUMMY_WEIGHTS;
import static dev.pdserve.core.config.ConfigKeys.MODEL_PRESET;
import static dev.pdserve.core.config.ConfigKeys.MODEL_QUANTIZATION;
import static dev.pdserve.core.config.ConfigKeys.MODEL_QUANTIZATION_BLOCK_SIZE;
import static dev.pdserve.core.config.ConfigKeys.MODEL_QUANTIZATION_COMPUTE;
import static dev.pdserve.core.config.ConfigKeys.MODEL_QUANTIZE_EMBEDDINGS;
import static dev.pdserve.core.config.ConfigKeys.MODEL_SEED;
import static dev.pdserve.core.config.ConfigKeys.MODEL_SERVED_NAME;
import static dev.pdserve.core.config.ConfigKeys.NODE_ID;
import static dev.pdserve.core.config.ConfigKeys.NODE_MEMORY_LIMIT;
import static dev.pdserve.core.config.ConfigKeys.ORT_EXECUTION_PROVIDER;
import static dev.pdserve.core.config.ConfigKeys.ORT_THREADS;
import static dev.pdserve.core.config.ConfigKeys.PREFILL_CHUNK_TOKENS;
import static dev.pdserve.core.config.ConfigKeys.PREFILL_PREFIX_CACHE;
import static dev.pdserve.core.config.ConfigKeys.ROLE;
import static dev.pdserve.core.config.ConfigKeys.ROLE_SWITCH_DRAIN_TIMEOUT_SECONDS;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_IMAGES_ALLOWED_HOSTS;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_IMAGES_FETCH_ENABLED;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_IMAGES_FETCH_TIMEOUT;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_IMAGES_MAX_BYTES;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_IMAGES_MAX_PER_PROMPT;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_IMAGES_MAX_PIXELS;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_IMAGES_MAX_REDIRECTS;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_LOCAL_PREFILL_THRESHOLD;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_MAX_QUEUE_DELAY;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_MIGRATION_LIMIT;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_PREFILL_TOKENS_PER_SECOND;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_PREFIX_CACHE_WEIGHT;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_STREAM_SILENCE_TIMEOUT;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_TLS_CERT;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_TLS_CLIENT_CA;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_TLS_ENABLED;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_TLS_KEY;
import static dev.pdserve.core.config.ConfigKeys.SHUTDOWN_TIMEOUT_SECONDS;
import static dev.pdserve.core.config.ConfigKeys.TLS_CA;
import static dev.pdserve.core.config.ConfigKeys.TLS_CERT;
import static dev.pdserve.core.config.ConfigKeys.TLS_ENABLED;
import static dev.pdserve.core.config.ConfigKeys.TLS_KEY;
import static dev.pdserve.core.config.ConfigKeys.TLS_RELOAD_INTERVAL;
import static dev.pdserve.core.config.ConfigKeys.VISION_ATTENTION_CHUNK;
import static dev.pdserve.core.config.ConfigKeys.VISION_ENABLED;
import static dev.pdserve.core.config.ConfigKeys.VISION_ENCODER_CACHE_BYTES;

import dev.pdserve.model.quant.QuantCompute;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.StoredQuantization;
import dev.pdserve.model.quant.WeightQuantization;
import java.net.InetAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * Reads a {@link NodeConfig} out of layered {@link ConfigValues}: one method per settings record,
 * each reading its keys through their {@link ConfigKeys} descriptions and checking the rules
 * between them. Every problem found is reported together in one {@link NodeConfigException}.
 */
final class SettingsReader {
  private final ConfigValues values;

  SettingsReader(ConfigValues values) {
    this.values = values;
  }

  /**
   * The configuration the values describe.
   *
   * @throws NodeConfigException listing every problem, each naming its key
   */
  NodeConfig read() {
    String nodeId = values.find(NODE_ID).orElseGet(NodeConfig::processNodeId);
    NodeRole role = role();
    NetworkSettings network = network();
    ClusterSettings cluster = cluster(network.advertisedHost());
    EngineSettings engine = engine();
    PrefixSettings prefix = prefix();
    CoordinatorConfig coordinator = coordinator();
    RouterConfig router = router(coordinator);
    ExpertSharding sharding = expertSharding(nodeId, role, engine.expertRange().isPresent());
    ShutdownSettings shutdown = new ShutdownSettings(values.get(SHUTDOWN_TIMEOUT_SECONDS));
    Duration kvTransferTimeout = values.get(KV_TRANSFER_TIMEOUT);
    if (kvTransferTimeout.isZero()) {
      values.fail(KV_TRANSFER_TIMEOUT, "must be more than 0 (a KV handoff needs some time)");
      kvTransferTimeout = ServingSettings.DEFAULT_KV_TRANSFER_TIMEOUT;
    }
    ServingSettings serving =
        new ServingSettings(
            values.find(MODEL_SERVED_NAME), values.get(NODE_MEMORY_LIMIT), kvTransferTimeout);
    TlsSettings.Node tls = tls();
    AuthSettings auth = auth();
    List<String> problems = values.problems();
    if (!problems.isEmpty()) {
      throw new NodeConfigException(problems);
    }
    return new NodeConfig(
        nodeId,
        role,
        network,
        cluster,
        engine,
        prefix,
        coordinator,
        router,
        sharding,
        shutdown,
        serving,
        tls,
        auth);
  }

  /**
   * Mutual TLS between nodes needs a certificate, its key and the cluster CA; the router's public
   * TLS takes the node's certificate and key unless given its own.
   */
  private TlsSettings.Node tls() {
    Duration reload = values.get(TLS_RELOAD_INTERVAL);
    Optional<Path> cert = values.find(TLS_CERT);
    Optional<Path> key = values.find(TLS_KEY);
    Optional<Path> ca = values.find(TLS_CA);
    boolean cluster = values.get(TLS_ENABLED);
    if (cluster) {
      requireFile(cert.isPresent(), TLS_CERT, TLS_ENABLED);
      requireFile(key.isPresent(), TLS_KEY, TLS_ENABLED);
      requireFile(ca.isPresent(), TLS_CA, TLS_ENABLED);
    }
    Optional<Path> publicCert = values.find(ROUTER_TLS_CERT).or(() -> cert);
    Optional<Path> publicKey = values.find(ROUTER_TLS_KEY).or(() -> key);
    boolean publicApi = values.get(ROUTER_TLS_ENABLED);
    if (publicApi) {
      requireFile(publicCert.isPresent(), ROUTER_TLS_CERT, ROUTER_TLS_ENABLED);
      requireFile(publicKey.isPresent(), ROUTER_TLS_KEY, ROUTER_TLS_ENABLED);
    }
    if (!values.problems().isEmpty()) {
      return TlsSettings.Node.DISABLED;
    }
    return new TlsSettings.Node(
        new TlsSettings(cluster, cert, key, ca, reload),
        new TlsSettings(
            publicApi, publicCert, publicKey, values.find(ROUTER_TLS_CLIENT_CA), reload));
  }

  private void requireFile(boolean present, ConfigKey<?> file, ConfigKey<?> switchKey) {
    if (!present) {
      values.fail(file, "required when " + switchKey + " is true (a PEM file)");
    }
  }

  /** API keys and the cluster token: keys only together with a token. */
  private AuthSettings auth() {
    Optional<Path> keys = readableFile(AUTH_API_KEYS_FILE);
    Optional<Path> token = readableFile(AUTH_CLUSTER_TOKEN_FILE);
    if (values.isSet(AUTH_API_KEYS_FILE) && !values.isSet(AUTH_CLUSTER_TOKEN_FILE)) {
      values.fail(
          AUTH_CLUSTER_TOKEN_FILE,
          "required when "
              + AUTH_API_KEYS_FILE
              + " is set: nodes present the cluster token to each other, and without one the"
              + " node-internal routes would be a way around the API keys");
    }
    return new AuthSettings(
        keys, token, values.get(AUTH_METRICS_OPEN), values.get(AUTH_HEALTH_OPEN));
  }

  /**
   * The path a key names. Whether it is readable is checked when the node starts ({@code
   * AccessControl}), not here: a manifest's settings load where its Secrets are not mounted.
   */
  private Optional<Path> readableFile(ConfigKey<String> key) {
    return values.find(key).map(Path::of);
  }

  private NodeRole role() {
    if (!values.isSet(ROLE)) {
      values.fail(
          ROLE,
          "required, one of " + ROLE.type().valid() + " (env " + ROLE.environmentVariable() + ")");
      return null;
    }
    return values.find(ROLE).orElse(null);
  }

  private NetworkSettings network() {
    String bindHost = values.get(BIND_HOST);
    Optional<String> advertised = values.find(ADVERTISED_HOST);
    if (advertised.isEmpty() && isWildcard(bindHost)) {
      values.fail(
          ADVERTISED_HOST,
          "required when "
              + BIND_HOST
              + " is a wildcard address ("
              + bindHost
              + "); set it to the address other nodes reach this one at (e.g. the pod IP)");
    }
    int grpcPort = values.get(GRPC_PORT);
    int flightPort = values.get(FLIGHT_PORT);
    int metricsPort = values.get(METRICS_PORT);
    int httpPort = values.get(HTTP_PORT);
    distinctPorts(grpcPort, flightPort, metricsPort, httpPort);
    Optional<Integer> healthPort = values.find(GRPC_HEALTH_PORT);
    healthPort
        .filter(
            p -> p != 0 && (p == grpcPort || p == flightPort || p == metricsPort || p == httpPort))
        .ifPresent(
            p ->
                values.fail(
                    GRPC_HEALTH_PORT,
                    "must differ from the gRPC, Flight, metrics and HTTP ports (" + p + ")"));
    long maxInbound = values.get(GRPC_MAX_INBOUND_BYTES);
    long maxBody = values.get(HTTP_MAX_BODY_BYTES);
    return new NetworkSettings(
        bindHost,
        advertised.orElse(bindHost),
        grpcPort,
        flightPort,
        metricsPort,
        (int) maxInbound,
        httpPort,
        (int) maxBody,
        healthPort);
  }

  private void distinctPorts(int grpc, int flight, int metrics, int http) {
    if (grpc != 0 && grpc == flight) {
      values.fail(FLIGHT_PORT, "must differ from " + GRPC_PORT + " (both " + grpc + ")");
    }
    if (metrics != 0 && (metrics == grpc || metrics == flight)) {
      values.fail(METRICS_PORT, "must differ from the gRPC and Flight ports (" + metrics + ")");
    }
    if (http != 0 && (http == grpc || http == flight || http == metrics)) {
      values.fail(HTTP_PORT, "must differ from the gRPC, Flight and metrics ports (" + http + ")");
    }
  }

  private ClusterSettings cluster(String advertisedHost) {
    String name = values.get(CLUSTER_NAME);
    JoinMode join = values.get(CLUSTER_JOIN);
    int port = values.get(CLUSTER_PORT);
    List<HostPort> members =
        values.find(CLUSTER_MEMBERS).orElseGet(() -> defaultSeeds(join, advertisedHost, port));
    String k8sService = values.get(CLUSTER_K8S_SERVICE);
    String k8sNamespace = values.get(CLUSTER_K8S_NAMESPACE);
    if (join == JoinMode.KUBERNETES && k8sService.isEmpty()) {
      values.fail(
          CLUSTER_K8S_SERVICE,
          "required when " + CLUSTER_JOIN + " is KUBERNETES (the headless Service name)");
    }
    int heartbeat = values.get(CLUSTER_HEARTBEAT_SECONDS);
    int maxNoHeartbeat = values.get(CLUSTER_MAX_NO_HEARTBEAT_SECONDS);
    if (maxNoHeartbeat <= heartbeat) {
      values.fail(
          CLUSTER_MAX_NO_HEARTBEAT_SECONDS,
          "must be greater than "
              + CLUSTER_HEARTBEAT_SECONDS
              + " ("
              + heartbeat
              + "), got "
              + maxNoHeartbeat);
    }
    return new ClusterSettings(
        name,
        join,
        members,
        k8sService,
        k8sNamespace,
        port,
        heartbeat,
        maxNoHeartbeat,
        values.get(CLUSTER_JOIN_WAIT_SECONDS),
        values.get(CLUSTER_MIN_SIZE),
        values.get(CLUSTER_LITE_MEMBER),
        new FailureDetection(
            values.get(CLUSTER_FAILURE_DETECTOR),
            values.get(CLUSTER_PHI_THRESHOLD),
            values.get(CLUSTER_MERGE_INTERVAL_SECONDS),
            values.get(CLUSTER_QUORUM_WINDOW_SECONDS)));
  }

  /** TCPIP without a member list: the cluster port and the next ones on this node's host. */
  private static List<HostPort> defaultSeeds(JoinMode join, String host, int clusterPort) {
    List<HostPort> seeds = new ArrayList<>();
    if (join == JoinMode.TCPIP && clusterPort != 0) {
      int end = Math.min(clusterPort + NodeConfigLoader.DEFAULT_SEED_PORTS - 1, 65535);
      for (int p = clusterPort; p <= end; p++) {
        seeds.add(new HostPort(host, p));
      }
    }
    return seeds;
  }

  private EngineSettings engine() {
    long kvBudget = values.get(KV_BUDGET_BYTES);
    Optional<ExpertRange> range = values.find(EXPERT_RANGE);
    Optional<Path> modelDir = values.find(MODEL_DIR);
    // A checkpoint directory replaces the preset: its name is then kept as given, unchecked.
    String preset =
        values.isSet(MODEL_DIR)
            ? values.text(MODEL_PRESET).orElse(MODEL_PRESET.defaultValue().orElseThrow())
            : values.get(MODEL_PRESET);
    int ortThreads = values.get(ORT_THREADS);
    boolean ortCuda = values.get(ORT_EXECUTION_PROVIDER);
    return new EngineSettings(
        kvBudget,
        range,
        preset,
        modelDir,
        ortThreads,
        values.get(MODEL_SEED),
        values.get(EXPERTS_MODE),
        values.get(PREFILL_CHUNK_TOKENS),
        values.get(DECODE_MAX_BATCH),
        ortCuda,
        values.get(KV_DTYPE),
        values.get(VISION_ENCODER_CACHE_BYTES),
        quantization(modelDir),
        values.get(MODEL_LOW_BIT_DUMMY_WEIGHTS),
        values.get(VISION_ENABLED),
        values.get(VISION_ATTENTION_CHUNK));
  }

  /**
   * Mode, block size, compute and whether the embeddings are quantized; int8 compute is refused
   * without a quantized mode.
   */
  private WeightQuantization quantization(Optional<Path> modelDir) {
    return quantizationWithoutEmbeddings(modelDir)
        .withQuantizedEmbeddings(values.get(MODEL_QUANTIZE_EMBEDDINGS));
  }

  private WeightQuantization quantizationWithoutEmbeddings(Optional<Path> modelDir) {
    QuantMode mode = values.get(MODEL_QUANTIZATION);
    int block = values.get(MODEL_QUANTIZATION_BLOCK_SIZE);
    QuantCompute compute = values.get(MODEL_QUANTIZATION_COMPUTE);
    Optional<StoredQuantization> stored = modelDir.flatMap(StoredQuantization::readIfPresent);
    if (stored.isPresent()) {
      // A pre-quantized model directory: served as stored; what is not set is taken from it.
      try {
        return stored
            .get()
            .resolve(
                values.isSet(MODEL_QUANTIZATION) ? Optional.of(mode) : Optional.empty(),
                values.isSet(MODEL_QUANTIZATION_BLOCK_SIZE) ? Optional.of(block) : Optional.empty(),
                compute,
                MODEL_DIR.name() + " " + modelDir.get());
      } catch (IllegalArgumentException e) {
        values.fail(MODEL_QUANTIZATION, e.getMessage());
        return stored.get().weights();
      }
    }
    if (mode == QuantMode.NONE && compute != QuantCompute.FP32) {
      values.fail(
          MODEL_QUANTIZATION_COMPUTE,
          compute.configName()
              + " needs "
              + MODEL_QUANTIZATION
              + " int8, int4 or int2-mixed (with none no product is computed by MatMulNBits)");
      compute = QuantCompute.FP32;
    }
    return new WeightQuantization(mode, block, compute);
  }

  private PrefixSettings prefix() {
    return new PrefixSettings(
        values.get(KV_LEASE_SECONDS),
        values.get(PREFILL_PREFIX_CACHE),
        values.get(ROUTER_LOCAL_PREFILL_THRESHOLD),
        values.get(ROUTER_PREFIX_CACHE_WEIGHT));
  }

  private CoordinatorConfig coordinator() {
    return new CoordinatorConfig(
        values.get(COORDINATOR_ENABLED),
        Duration.ofMillis(values.get(COORDINATOR_PERIOD_MS)),
        Duration.ofSeconds(values.get(ROLE_SWITCH_DRAIN_TIMEOUT_SECONDS)),
        values.get(COORDINATOR_TTFT_TARGET_MS),
        values.get(COORDINATOR_TPOT_TARGET_MS));
  }

  /** The router's failure and overload settings; the queue delay bound defaults from the TTFT. */
  private RouterConfig router(CoordinatorConfig coordinator) {
    Duration maxQueueDelay =
        values
            .find(ROUTER_MAX_QUEUE_DELAY)
            .orElse(RouterConfig.maxQueueDelayFor(coordinator.ttftTargetMillis()));
    return new RouterConfig(
        values.get(ROUTER_MIGRATION_LIMIT),
        values.get(KV_FAILURE_POLICY),
        values.get(ROUTER_STREAM_SILENCE_TIMEOUT),
        maxQueueDelay,
        values.get(ROUTER_PREFILL_TOKENS_PER_SECOND),
        images());
  }

  private ImageIntakeSettings images() {
    return new ImageIntakeSettings(
        // text only (pdserve.vision.enabled=false): images refused unless a limit is set
        values.isSet(ROUTER_IMAGES_MAX_PER_PROMPT) || values.get(VISION_ENABLED)
            ? values.get(ROUTER_IMAGES_MAX_PER_PROMPT)
            : 0,
        values.get(ROUTER_IMAGES_MAX_BYTES),
        values.get(ROUTER_IMAGES_MAX_PIXELS),
        values.get(ROUTER_IMAGES_FETCH_ENABLED),
        ImageIntakeSettings.parseHosts(values.get(ROUTER_IMAGES_ALLOWED_HOSTS)),
        values.get(ROUTER_IMAGES_FETCH_TIMEOUT),
        values.get(ROUTER_IMAGES_MAX_REDIRECTS));
  }

  /**
   * {@code pdserve.expert.shard-count} / {@code -index}: consistent with each other and with {@code
   * pdserve.expert.range}; an expert node without an index needs an ordinal in its id.
   */
  private ExpertSharding expertSharding(String nodeId, NodeRole role, boolean rangeSet) {
    if (!values.isSet(EXPERT_SHARD_COUNT)) {
      if (values.isSet(EXPERT_SHARD_INDEX)) {
        values.fail(
            EXPERT_SHARD_INDEX,
            "needs " + EXPERT_SHARD_COUNT + " (the number of shards the experts are split into)");
      }
      return ExpertSharding.NONE;
    }
    Optional<Integer> count = values.find(EXPERT_SHARD_COUNT);
    if (count.isEmpty()) {
      return ExpertSharding.NONE;
    }
    if (rangeSet) {
      values.fail(
          EXPERT_SHARD_COUNT,
          "set together with "
              + EXPERT_RANGE
              + "; give a shard either an explicit range (--experts) or a shard count, not both");
      return ExpertSharding.NONE;
    }
    OptionalInt index = OptionalInt.empty();
    if (values.isSet(EXPERT_SHARD_INDEX)) {
      Optional<Integer> i =
          values.find(EXPERT_SHARD_INDEX.withType(new ValueType.Int(0, count.get() - 1)));
      if (i.isEmpty()) {
        return ExpertSharding.NONE;
      }
      index = OptionalInt.of(i.get());
    } else if (role == NodeRole.EXPERT && ExpertSharding.ordinalOf(nodeId).isEmpty()) {
      values.fail(EXPERT_SHARD_COUNT, ExpertSharding.noOrdinal(nodeId));
      return ExpertSharding.NONE;
    }
    return new ExpertSharding(OptionalInt.of(count.get()), index);
  }

  private static boolean isWildcard(String host) {
    try {
      return InetAddress.getByName(host).isAnyLocalAddress();
    } catch (Exception e) {
      return false;
    }
  }
}
