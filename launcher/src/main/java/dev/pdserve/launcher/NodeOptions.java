package dev.pdserve.launcher;

import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.config.ShutdownSettings;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/**
 * Options every node process takes. Settings come from {@code --config FILE} (a .properties file),
 * then {@code PDSERVE_*} environment variables, then these flags; {@code --set KEY=VALUE} sets any
 * key (see docs/CONFIGURATION in the README).
 */
final class NodeOptions {
  @Option(
      names = "--config",
      paramLabel = "FILE",
      description = "A .properties file of pdserve.* settings.")
  Path configFile;

  @Option(
      names = "--set",
      paramLabel = "KEY=VALUE",
      description = "Any setting, e.g. --set pdserve.kv.budget-bytes=2g (repeatable).")
  Map<String, String> set = new LinkedHashMap<>();

  @Option(names = "--node-id", paramLabel = "ID")
  String nodeId;

  @Option(
      names = "--bind",
      paramLabel = "HOST",
      description = "Address to listen on (default 127.0.0.1).")
  String bind;

  @Option(
      names = "--advertise",
      paramLabel = "HOST",
      description = "Address other nodes reach this one at.")
  String advertise;

  @Option(names = "--grpc-port", paramLabel = "N", description = "gRPC port (0 = any free port).")
  Integer grpcPort;

  @Option(
      names = "--flight-port",
      paramLabel = "N",
      description = "Arrow Flight KV port (0 = any free port).")
  Integer flightPort;

  @Option(
      names = "--metrics-port",
      paramLabel = "N",
      description = "Prometheus /metrics HTTP port (0 = any free port).")
  Integer metricsPort;

  @Option(names = "--cluster-name", paramLabel = "NAME")
  String clusterName;

  @Option(
      names = "--cluster-port",
      paramLabel = "N",
      description = "Hazelcast member port (0 = any).")
  Integer clusterPort;

  @Option(
      names = "--members",
      paramLabel = "HOST:PORT,...",
      description = "Hazelcast members to join (TCP-IP).")
  String members;

  @Option(names = "--preset", paramLabel = "NAME", description = "Built-in model (default tiny).")
  String preset;

  @Option(
      names = "--model",
      paramLabel = "DIR",
      description = "Model directory (config.json + safetensors).")
  String modelDir;

  @Option(
      names = "--served-model-name",
      paramLabel = "NAME",
      description =
          "Name the model is served under (key pdserve.model.served-name; default: the model"
              + " directory's name, or the preset's).")
  String servedModelName;

  @Option(
      names = "--memory-limit",
      paramLabel = "SIZE",
      description =
          "Memory this node's share of the model must fit in, e.g. 20g (key"
              + " pdserve.node.memory-limit; default: the machine's physical memory).")
  String memoryLimit;

  @Option(
      names = "--seed-weights",
      paramLabel = "N",
      description = "Seed of a preset's dummy weights (every node must agree).")
  Long seed;

  @Option(
      names = "--kv-budget",
      paramLabel = "SIZE",
      description = "KV pool memory, e.g. 512m, 2g.")
  String kvBudget;

  @Option(
      names = "--ort-threads",
      paramLabel = "N",
      description = "ONNX Runtime intra-op threads (0 = all cores).")
  Integer ortThreads;

  @Option(
      names = "--shutdown-timeout",
      paramLabel = "DURATION",
      converter = ShutdownTimeout.class,
      description =
          "How long the node drains on SIGTERM before it closes, e.g. 30s, 2m, 500ms or plain"
              + " seconds; 0..3600 s (key pdserve.shutdown.timeout-seconds, default 30s).")
  Duration shutdownTimeout;

  @Option(
      names = "--api-keys-file",
      paramLabel = "FILE",
      description =
          "API keys, one a line, re-read when the file changes: every public route then needs"
              + " `Authorization: Bearer KEY` (key pdserve.auth.api-keys-file; needs"
              + " --cluster-token-file).")
  String apiKeysFile;

  @Option(
      names = "--cluster-token-file",
      paramLabel = "FILE",
      description =
          "The token nodes present to each other; node-internal routes need it (key"
              + " pdserve.auth.cluster-token-file).")
  String clusterTokenFile;

  /** Parses {@code --shutdown-timeout}; picocli names the flag in the error. */
  static final class ShutdownTimeout implements CommandLine.ITypeConverter<Duration> {
    @Override
    public Duration convert(String value) {
      try {
        return ShutdownSettings.parseTimeout(value);
      } catch (IllegalArgumentException e) {
        throw new CommandLine.TypeConversionException(e.getMessage());
      }
    }
  }

  NodeConfig load(String role, Map<String, String> more) {
    Map<String, String> m = new LinkedHashMap<>();
    put(m, NodeConfigLoader.ROLE, role);
    put(m, NodeConfigLoader.NODE_ID, nodeId);
    put(m, NodeConfigLoader.BIND_HOST, bind);
    put(m, NodeConfigLoader.ADVERTISED_HOST, advertise);
    put(m, NodeConfigLoader.GRPC_PORT, grpcPort);
    put(m, NodeConfigLoader.FLIGHT_PORT, flightPort);
    put(m, NodeConfigLoader.METRICS_PORT, metricsPort);
    put(m, NodeConfigLoader.CLUSTER_NAME, clusterName);
    put(m, NodeConfigLoader.CLUSTER_PORT, clusterPort);
    put(m, NodeConfigLoader.CLUSTER_MEMBERS, members);
    put(m, NodeConfigLoader.MODEL_PRESET, preset);
    put(m, NodeConfigLoader.MODEL_DIR, modelDir);
    put(m, NodeConfigLoader.MODEL_SEED, seed);
    put(m, NodeConfigLoader.MODEL_SERVED_NAME, servedModelName);
    put(m, NodeConfigLoader.NODE_MEMORY_LIMIT, memoryLimit);
    put(m, NodeConfigLoader.KV_BUDGET_BYTES, kvBudget);
    put(m, NodeConfigLoader.ORT_THREADS, ortThreads);
    put(m, NodeConfigLoader.AUTH_API_KEYS_FILE, apiKeysFile);
    put(m, NodeConfigLoader.AUTH_CLUSTER_TOKEN_FILE, clusterTokenFile);
    if (shutdownTimeout != null) {
      m.put(NodeConfigLoader.SHUTDOWN_TIMEOUT_SECONDS, shutdownTimeout.toMillis() + "ms");
    }
    m.putAll(more);
    m.putAll(set);
    return NodeConfigLoader.load(configFile, m);
  }

  private static void put(Map<String, String> m, String key, Object v) {
    if (v != null) {
      m.put(key, v.toString());
    }
  }
}
