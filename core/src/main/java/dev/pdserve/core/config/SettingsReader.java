package dev.pdserve.core.config;

import static dev.pdserve.core.config.ConfigKeys.COORDINATOR_ENABLED;
import static dev.pdserve.core.config.ConfigKeys.COORDINATOR_PERIOD_MS;
import static dev.pdserve.core.config.ConfigKeys.COORDINATOR_TPOT_TARGET_MS;
import static dev.pdserve.core.config.ConfigKeys.COORDINATOR_TTFT_TARGET_MS;
import static dev.pdserve.core.config.ConfigKeys.DECODE_MAX_BATCH;
import static dev.pdserve.core.config.ConfigKeys.EXPERTS_MODE;
import static dev.pdserve.core.config.ConfigKeys.EXPERT_RANGE;
import static dev.pdserve.core.config.ConfigKeys.EXPERT_SHARD_COUNT;
import static dev.pdserve.core.config.ConfigKeys.EXPERT_SHARD_INDEX;
import static dev.pdserve.core.config.ConfigKeys.KV_BUDGET_BYTES;
import static dev.pdserve.core.config.ConfigKeys.KV_DTYPE;
import static dev.pdserve.core.config.ConfigKeys.KV_FAILURE_POLICY;
import static dev.pdserve.core.config.ConfigKeys.KV_LEASE_SECONDS;
import static dev.pdserve.core.config.ConfigKeys.KV_TRANSFER_TIMEOUT;
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
import static dev.pdserve.core.config.ConfigKeys.SHUTDOWN_TIMEOUT_SECONDS;
import static dev.pdserve.core.config.ConfigKeys.VISION_ATTENTION_CHUNK;
import static dev.pdserve.core.config.ConfigKeys.VISION_ENABLED;
import static dev.pdserve.core.config.ConfigKeys.VISION_ENCODER_CACHE_BYTES;

import dev.pdserve.model.quant.QuantCompute;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.StoredQuantization;
import dev.pdserve.model.quant.WeightQuantization;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * Reads a {@link NodeConfig} out of layered {@link ConfigValues}: one method per settings record,
 * each reading its keys through their {@link ConfigKeys} descriptions and checking the rules
 * between them; the network and cluster settings are read by {@link NetworkSettingsReader}, TLS and
 * authentication by {@link SecuritySettingsReader}. Every problem found is reported together in one
 * {@link NodeConfigException}.
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
    NetworkSettingsReader networkReader = new NetworkSettingsReader(values);
    NetworkSettings network = networkReader.network();
    ClusterSettings cluster = networkReader.cluster(network.advertisedHost());
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
    SecuritySettingsReader securityReader = new SecuritySettingsReader(values);
    TlsSettings.Node tls = securityReader.tls();
    AuthSettings auth = securityReader.auth();
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

  private NodeRole role() {
    if (!values.isSet(ROLE)) {
      values.fail(
          ROLE,
          "required, one of " + ROLE.type().valid() + " (env " + ROLE.environmentVariable() + ")");
      return null;
    }
    return values.find(ROLE).orElse(null);
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
}
