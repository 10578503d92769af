package dev.pdserve.core.config;

import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;

/**
 * Builds a {@link NodeConfig} from, in increasing precedence: a {@code .properties} file, {@code
 * PDSERVE_*} environment variables, and explicit overrides (the CLI's flags). A blank value means
 * "not set" and falls back to the layer below or the default.
 *
 * <p>Keys are {@code pdserve.*}, each described once in {@link ConfigKeys}; overrides may drop the
 * {@code pdserve.} prefix. The environment variable of a key is its name without the prefix,
 * upper-cased, with {@code .} and {@code -} turned into {@code _}, behind {@code PDSERVE_}: {@code
 * pdserve.cluster.max-no-heartbeat-seconds} is {@code PDSERVE_CLUSTER_MAX_NO_HEARTBEAT_SECONDS}.
 * Unknown keys in the file or the overrides are errors; other {@code PDSERVE_*} variables are
 * ignored (Kubernetes injects {@code <SERVICE>_PORT}-style variables of its own).
 *
 * <p>Every problem found is reported at once in a {@link NodeConfigException}, each line naming its
 * key and where the value came from.
 */
public final class NodeConfigLoader {
  public static final String PREFIX = ConfigKey.PREFIX;

  // The names of the keys of ConfigKeys, for callers that build maps of overrides.
  public static final String NODE_ID = ConfigKeys.NODE_ID.name();
  public static final String ROLE = ConfigKeys.ROLE.name();
  public static final String BIND_HOST = ConfigKeys.BIND_HOST.name();
  public static final String ADVERTISED_HOST = ConfigKeys.ADVERTISED_HOST.name();
  public static final String GRPC_PORT = ConfigKeys.GRPC_PORT.name();
  public static final String GRPC_MAX_INBOUND_BYTES = ConfigKeys.GRPC_MAX_INBOUND_BYTES.name();
  public static final String FLIGHT_PORT = ConfigKeys.FLIGHT_PORT.name();
  public static final String METRICS_PORT = ConfigKeys.METRICS_PORT.name();
  public static final String HTTP_PORT = ConfigKeys.HTTP_PORT.name();
  public static final String HTTP_MAX_BODY_BYTES = ConfigKeys.HTTP_MAX_BODY_BYTES.name();
  public static final String CLUSTER_NAME = ConfigKeys.CLUSTER_NAME.name();
  public static final String CLUSTER_JOIN = ConfigKeys.CLUSTER_JOIN.name();
  public static final String CLUSTER_MEMBERS = ConfigKeys.CLUSTER_MEMBERS.name();
  public static final String CLUSTER_K8S_SERVICE = ConfigKeys.CLUSTER_K8S_SERVICE.name();
  public static final String CLUSTER_K8S_NAMESPACE = ConfigKeys.CLUSTER_K8S_NAMESPACE.name();
  public static final String CLUSTER_PORT = ConfigKeys.CLUSTER_PORT.name();
  public static final String CLUSTER_HEARTBEAT_SECONDS =
      ConfigKeys.CLUSTER_HEARTBEAT_SECONDS.name();
  public static final String CLUSTER_MAX_NO_HEARTBEAT_SECONDS =
      ConfigKeys.CLUSTER_MAX_NO_HEARTBEAT_SECONDS.name();
  public static final String CLUSTER_JOIN_WAIT_SECONDS =
      ConfigKeys.CLUSTER_JOIN_WAIT_SECONDS.name();
  public static final String CLUSTER_MIN_SIZE = ConfigKeys.CLUSTER_MIN_SIZE.name();
  public static final String CLUSTER_LITE_MEMBER = ConfigKeys.CLUSTER_LITE_MEMBER.name();
  public static final String AUTH_API_KEYS_FILE = ConfigKeys.AUTH_API_KEYS_FILE.name();
  public static final String AUTH_CLUSTER_TOKEN_FILE = ConfigKeys.AUTH_CLUSTER_TOKEN_FILE.name();
  public static final String AUTH_METRICS_OPEN = ConfigKeys.AUTH_METRICS_OPEN.name();
  public static final String AUTH_HEALTH_OPEN = ConfigKeys.AUTH_HEALTH_OPEN.name();
  public static final String KV_BUDGET_BYTES = ConfigKeys.KV_BUDGET_BYTES.name();
  public static final String KV_DTYPE = ConfigKeys.KV_DTYPE.name();
  public static final String MODEL_QUANTIZATION = ConfigKeys.MODEL_QUANTIZATION.name();
  public static final String MODEL_QUANTIZATION_BLOCK_SIZE =
      ConfigKeys.MODEL_QUANTIZATION_BLOCK_SIZE.name();
  public static final String MODEL_QUANTIZATION_COMPUTE =
      ConfigKeys.MODEL_QUANTIZATION_COMPUTE.name();
  public static final String MODEL_QUANTIZE_EMBEDDINGS =
      ConfigKeys.MODEL_QUANTIZE_EMBEDDINGS.name();
  public static final String EXPERT_RANGE = ConfigKeys.EXPERT_RANGE.name();
  public static final String MODEL_PRESET = ConfigKeys.MODEL_PRESET.name();
  public static final String MODEL_DIR = ConfigKeys.MODEL_DIR.name();
  public static final String MODEL_SERVED_NAME = ConfigKeys.MODEL_SERVED_NAME.name();
  public static final String NODE_MEMORY_LIMIT = ConfigKeys.NODE_MEMORY_LIMIT.name();
  public static final String ORT_THREADS = ConfigKeys.ORT_THREADS.name();
  public static final String ORT_EXECUTION_PROVIDER = ConfigKeys.ORT_EXECUTION_PROVIDER.name();
  public static final String MODEL_SEED = ConfigKeys.MODEL_SEED.name();
  public static final String MODEL_LOW_BIT_DUMMY_WEIGHTS =
      ConfigKeys.MODEL_LOW_BIT_DUMMY_WEIGHTS.name();
  public static final String EXPERTS_MODE = ConfigKeys.EXPERTS_MODE.name();
  public static final String PREFILL_CHUNK_TOKENS = ConfigKeys.PREFILL_CHUNK_TOKENS.name();
  public static final String DECODE_MAX_BATCH = ConfigKeys.DECODE_MAX_BATCH.name();
  public static final String KV_LEASE_SECONDS = ConfigKeys.KV_LEASE_SECONDS.name();
  public static final String PREFILL_PREFIX_CACHE = ConfigKeys.PREFILL_PREFIX_CACHE.name();
  public static final String ROUTER_LOCAL_PREFILL_THRESHOLD =
      ConfigKeys.ROUTER_LOCAL_PREFILL_THRESHOLD.name();
  public static final String ROUTER_PREFIX_CACHE_WEIGHT =
      ConfigKeys.ROUTER_PREFIX_CACHE_WEIGHT.name();
  public static final String COORDINATOR_ENABLED = ConfigKeys.COORDINATOR_ENABLED.name();
  public static final String COORDINATOR_PERIOD_MS = ConfigKeys.COORDINATOR_PERIOD_MS.name();
  public static final String COORDINATOR_TTFT_TARGET_MS =
      ConfigKeys.COORDINATOR_TTFT_TARGET_MS.name();
  public static final String COORDINATOR_TPOT_TARGET_MS =
      ConfigKeys.COORDINATOR_TPOT_TARGET_MS.name();
  public static final String ROLE_SWITCH_DRAIN_TIMEOUT_SECONDS =
      ConfigKeys.ROLE_SWITCH_DRAIN_TIMEOUT_SECONDS.name();
  public static final String EXPERT_SHARD_COUNT = ConfigKeys.EXPERT_SHARD_COUNT.name();
  public static final String EXPERT_SHARD_INDEX = ConfigKeys.EXPERT_SHARD_INDEX.name();
  public static final String SHUTDOWN_TIMEOUT_SECONDS = ConfigKeys.SHUTDOWN_TIMEOUT_SECONDS.name();

  /** Every key, in documentation order: the names of {@link ConfigKeys#ALL}. */
  public static final List<String> KEYS = ConfigKeys.names();

  public static final int DEFAULT_CLUSTER_PORT = 5701;

  /** Seed ports listed by default in TCPIP mode: the cluster port and the next ones, one by one. */
  public static final int DEFAULT_SEED_PORTS = 10;

  private NodeConfigLoader() {}

  /** File (may be null), then this process's environment, then {@code overrides}. */
  public static NodeConfig load(Path file, Map<String, String> overrides) {
    return load(Optional.ofNullable(file), System.getenv(), overrides);
  }

  /**
   * File, then {@code environment} (only {@code PDSERVE_*} names are read), then {@code overrides}.
   */
  public static NodeConfig load(
      Optional<Path> file, Map<String, String> environment, Map<String, String> overrides) {
    ConfigValues values = new ConfigValues();
    file.ifPresent(f -> readFile(values, f));
    for (ConfigKey<?> key : ConfigKeys.ALL) {
      String var = key.environmentVariable();
      String v = environment.get(var);
      if (v != null) {
        values.set(key, v, "environment " + var);
      }
    }
    readMap(values, overrides, "flag");
    return new SettingsReader(values).read();
  }

  /** Only {@code settings} over the defaults: no file, no environment. */
  public static NodeConfig fromMap(Map<String, String> settings) {
    return load(Optional.empty(), Map.of(), settings);
  }

  /** The environment variable that sets {@code key}, e.g. {@code PDSERVE_GRPC_PORT}. */
  public static String environmentVariable(String key) {
    return ConfigKey.environmentVariable(key);
  }

  private static void readFile(ConfigValues values, Path file) {
    Properties p = new Properties();
    try (Reader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      p.load(r);
    } catch (IOException e) {
      values.problem("config file " + file + ": cannot read it (" + e + ")");
      return;
    }
    Map<String, String> m = new LinkedHashMap<>();
    for (String name : p.stringPropertyNames()) {
      m.put(name, p.getProperty(name));
    }
    readMap(values, m, "file " + file);
  }

  private static void readMap(ConfigValues values, Map<String, String> m, String origin) {
    for (Map.Entry<String, String> e : m.entrySet()) {
      String name = e.getKey().trim();
      if (!name.startsWith(PREFIX)) {
        name = PREFIX + name;
      }
      Optional<ConfigKey<?>> key = ConfigKeys.find(name);
      if (key.isEmpty()) {
        values.problem(
            name + ": unknown key (from " + origin + "); known keys: " + String.join(", ", KEYS));
        continue;
      }
      values.set(key.get(), e.getValue(), origin);
    }
  }
}
