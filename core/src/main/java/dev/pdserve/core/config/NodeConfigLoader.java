package dev.pdserve.core.config;

import dev.pdserve.model.config.ModelPresets;
import java.io.IOException;
import java.io.Reader;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.function.Function;
import java.util.regex.Pattern;

/**
 * Builds a {@link NodeConfig} from, in increasing precedence: a {@code .properties} file, {@code
 * PDSERVE_*} environment variables, and explicit overrides (the CLI's flags). A blank value means
 * "not set" and falls back to the layer below or the default.
 *
 * <p>Keys are {@code pdserve.*} (see the constants); overrides may drop the {@code pdserve.}
 * prefix. The environment variable of a key is its name without the prefix, upper-cased, with
 * {@code .} and {@code -} turned into {@code _}, behind {@code PDSERVE_}: {@code
 * pdserve.cluster.max-no-heartbeat-seconds} is {@code PDSERVE_CLUSTER_MAX_NO_HEARTBEAT_SECONDS}.
 * Unknown keys in the file or the overrides are errors; other {@code PDSERVE_*} variables are
 * ignored (Kubernetes injects {@code <SERVICE>_PORT}-style variables of its own).
 *
 * <p>Every problem found is reported at once in a {@link NodeConfigException}, each line naming its
 * key and where the value came from.
 */
public final class NodeConfigLoader {
  public static final String PREFIX = "pdserve.";

  public static final String NODE_ID = "pdserve.node.id";
  public static final String ROLE = "pdserve.role";
  public static final String BIND_HOST = "pdserve.bind.host";
  public static final String ADVERTISED_HOST = "pdserve.advertised.host";
  public static final String GRPC_PORT = "pdserve.grpc.port";
  public static final String GRPC_MAX_INBOUND_BYTES = "pdserve.grpc.max-inbound-bytes";
  public static final String FLIGHT_PORT = "pdserve.flight.port";
  public static final String METRICS_PORT = "pdserve.metrics.port";
  public static final String HTTP_PORT = "pdserve.http.port";
  public static final String HTTP_MAX_BODY_BYTES = "pdserve.http.max-body-bytes";
  public static final String CLUSTER_NAME = "pdserve.cluster.name";
  public static final String CLUSTER_JOIN = "pdserve.cluster.join";
  public static final String CLUSTER_MEMBERS = "pdserve.cluster.members";
  public static final String CLUSTER_K8S_SERVICE = "pdserve.cluster.kubernetes.service";
  public static final String CLUSTER_K8S_NAMESPACE = "pdserve.cluster.kubernetes.namespace";
  public static final String CLUSTER_PORT = "pdserve.cluster.port";
  public static final String CLUSTER_HEARTBEAT_SECONDS =
      "pdserve.cluster.heartbeat-interval-seconds";
  public static final String CLUSTER_MAX_NO_HEARTBEAT_SECONDS =
      "pdserve.cluster.max-no-heartbeat-seconds";
  public static final String CLUSTER_JOIN_WAIT_SECONDS = "pdserve.cluster.join-wait-seconds";
  public static final String CLUSTER_MIN_SIZE = "pdserve.cluster.min-size";
  public static final String CLUSTER_LITE_MEMBER = "pdserve.cluster.lite-member";
  public static final String KV_BUDGET_BYTES = "pdserve.kv.budget-bytes";
  public static final String EXPERT_RANGE = "pdserve.expert.range";
  public static final String MODEL_PRESET = "pdserve.model.preset";
  public static final String MODEL_DIR = "pdserve.model.dir";
  public static final String ORT_THREADS = "pdserve.ort.threads";
  public static final String ORT_EXECUTION_PROVIDER = "pdserve.ort.execution-provider";
  public static final String MODEL_SEED = "pdserve.model.seed";
  public static final String EXPERTS_MODE = "pdserve.experts.mode";
  public static final String PREFILL_CHUNK_TOKENS = "pdserve.prefill.chunk-tokens";
  public static final String DECODE_MAX_BATCH = "pdserve.decode.max-batch";
  public static final String KV_LEASE_SECONDS = "pdserve.kv.lease-seconds";
  public static final String PREFILL_PREFIX_CACHE = "pdserve.prefill.prefix-cache";
  public static final String ROUTER_LOCAL_PREFILL_THRESHOLD =
      "pdserve.router.local-prefill-threshold";
  public static final String ROUTER_PREFIX_CACHE_WEIGHT = "pdserve.router.prefix-cache-weight";
  public static final String COORDINATOR_ENABLED = "pdserve.coordinator.enabled";
  public static final String COORDINATOR_PERIOD_MS = "pdserve.coordinator.period-ms";
  public static final String COORDINATOR_TTFT_TARGET_MS = "pdserve.coordinator.ttft-target-ms";
  public static final String COORDINATOR_TPOT_TARGET_MS = "pdserve.coordinator.tpot-target-ms";
  public static final String ROLE_SWITCH_DRAIN_TIMEOUT_SECONDS =
      "pdserve.role-switch.drain-timeout-seconds";
  public static final String EXPERT_SHARD_COUNT = "pdserve.expert.shard-count";
  public static final String EXPERT_SHARD_INDEX = "pdserve.expert.shard-index";
  public static final String SHUTDOWN_TIMEOUT_SECONDS = "pdserve.shutdown.timeout-seconds";

  /** Every key, in documentation order. */
  public static final List<String> KEYS =
      List.of(
          NODE_ID,
          ROLE,
          BIND_HOST,
          ADVERTISED_HOST,
          GRPC_PORT,
          GRPC_MAX_INBOUND_BYTES,
          FLIGHT_PORT,
          METRICS_PORT,
          HTTP_PORT,
          HTTP_MAX_BODY_BYTES,
          CLUSTER_NAME,
          CLUSTER_JOIN,
          CLUSTER_MEMBERS,
          CLUSTER_K8S_SERVICE,
          CLUSTER_K8S_NAMESPACE,
          CLUSTER_PORT,
          CLUSTER_HEARTBEAT_SECONDS,
          CLUSTER_MAX_NO_HEARTBEAT_SECONDS,
          CLUSTER_JOIN_WAIT_SECONDS,
          CLUSTER_MIN_SIZE,
          CLUSTER_LITE_MEMBER,
          KV_BUDGET_BYTES,
          EXPERT_RANGE,
          MODEL_PRESET,
          MODEL_DIR,
          ORT_THREADS,
          ORT_EXECUTION_PROVIDER,
          MODEL_SEED,
          EXPERTS_MODE,
          PREFILL_CHUNK_TOKENS,
          DECODE_MAX_BATCH,
          KV_LEASE_SECONDS,
          PREFILL_PREFIX_CACHE,
          ROUTER_LOCAL_PREFILL_THRESHOLD,
          ROUTER_PREFIX_CACHE_WEIGHT,
          COORDINATOR_ENABLED,
          COORDINATOR_PERIOD_MS,
          COORDINATOR_TTFT_TARGET_MS,
          COORDINATOR_TPOT_TARGET_MS,
          ROLE_SWITCH_DRAIN_TIMEOUT_SECONDS,
          EXPERT_SHARD_COUNT,
          EXPERT_SHARD_INDEX,
          SHUTDOWN_TIMEOUT_SECONDS);

  public static final int DEFAULT_CLUSTER_PORT = 5701;

  /** Seed ports listed by default in TCPIP mode: the cluster port and the next ones, one by one. */
  public static final int DEFAULT_SEED_PORTS = 10;

  private static final Pattern NODE_ID_PATTERN =
      Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");
  private static final Pattern SIZE =
      Pattern.compile("(\\d+)\\s*([kmgt]i?b?)?", Pattern.CASE_INSENSITIVE);

  private final Map<String, String> values = new LinkedHashMap<>();
  private final Map<String, String> origins = new LinkedHashMap<>();
  private final List<String> problems = new ArrayList<>();

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
    NodeConfigLoader l = new NodeConfigLoader();
    file.ifPresent(l::readFile);
    for (String key : KEYS) {
      String var = environmentVariable(key);
      String v = environment.get(var);
      if (v != null) {
        l.set(key, v, "environment " + var);
      }
    }
    l.readMap(overrides, "flag");
    return l.build();
  }

  /** Only {@code settings} over the defaults: no file, no environment. */
  public static NodeConfig fromMap(Map<String, String> settings) {
    return load(Optional.empty(), Map.of(), settings);
  }

  /** The environment variable that sets {@code key}, e.g. {@code PDSERVE_GRPC_PORT}. */
  public static String environmentVariable(String key) {
    String bare = key.startsWith(PREFIX) ? key.substring(PREFIX.length()) : key;
    return "PDSERVE_" + bare.toUpperCase(Locale.ROOT).replace('.', '_').replace('-', '_');
  }

  private void readFile(Path file) {
    Properties p = new Properties();
    try (Reader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      p.load(r);
    } catch (IOException e) {
      problems.add("config file " + file + ": cannot read it (" + e + ")");
      return;
    }
    Map<String, String> m = new LinkedHashMap<>();
    for (String name : p.stringPropertyNames()) {
      m.put(name, p.getProperty(name));
    }
    readMap(m, "file " + file);
  }

  private void readMap(Map<String, String> m, String origin) {
    for (Map.Entry<String, String> e : m.entrySet()) {
      String key = e.getKey().trim();
      if (!key.startsWith(PREFIX)) {
        key = PREFIX + key;
      }
      if (!KEYS.contains(key)) {
        problems.add(
            key + ": unknown key (from " + origin + "); known keys: " + String.join(", ", KEYS));
        continue;
      }
      set(key, e.getValue(), origin);
    }
  }

  private void set(String key, String value, String origin) {
    if (value == null || value.isBlank()) {
      values.remove(key);
      origins.remove(key);
    } else {
      values.put(key, value.trim());
      origins.put(key, origin);
    }
  }

  private NodeConfig build() {
    String nodeId = string(NODE_ID, null);
    if (nodeId == null) {
      nodeId = NodeConfig.processNodeId();
    } else if (!NODE_ID_PATTERN.matcher(nodeId).matches()) {
      fail(
          NODE_ID,
          "must be 1..128 characters of letters, digits, '.', '_' or '-' starting with a letter or digit, got '"
              + nodeId
              + "'");
    }
    NodeRole role = null;
    if (!values.containsKey(ROLE)) {
      problems.add(
          ROLE
              + ": required, one of ROUTER, PREFILL, DECODE, EXPERT (env "
              + environmentVariable(ROLE)
              + ")");
    } else {
      role = parse(ROLE, NodeRole::parse, null);
    }

    String bindHost = string(BIND_HOST, "127.0.0.1");
    String advertised = string(ADVERTISED_HOST, null);
    if (advertised == null) {
      if (isWildcard(bindHost)) {
        problems.add(
            ADVERTISED_HOST
                + ": required when "
                + BIND_HOST
                + " is a wildcard address ("
                + bindHost
                + "); set it to the address other nodes reach this one at (e.g. the pod IP)");
      }
      advertised = bindHost;
    }
    int grpcPort = port(GRPC_PORT, 0);
    int flightPort = port(FLIGHT_PORT, 0);
    int metricsPort = port(METRICS_PORT, 0);
    int httpPort = port(HTTP_PORT, 0);
    distinctPorts(grpcPort, flightPort, metricsPort, httpPort);
    long maxInbound = bytes(GRPC_MAX_INBOUND_BYTES, 4L << 20);
    if (maxInbound < 1024 || maxInbound > Integer.MAX_VALUE) {
      fail(GRPC_MAX_INBOUND_BYTES, "must be 1KiB..2GiB, got " + maxInbound);
      maxInbound = 4L << 20;
    }
    long maxBody = bytes(HTTP_MAX_BODY_BYTES, NetworkSettings.DEFAULT_HTTP_MAX_BODY_BYTES);
    if (maxBody < 1024 || maxBody > Integer.MAX_VALUE) {
      fail(HTTP_MAX_BODY_BYTES, "must be 1KiB..2GiB, got " + maxBody);
      maxBody = NetworkSettings.DEFAULT_HTTP_MAX_BODY_BYTES;
    }
    NetworkSettings network =
        new NetworkSettings(
            bindHost,
            advertised,
            grpcPort,
            flightPort,
            metricsPort,
            (int) maxInbound,
            httpPort,
            (int) maxBody);

    String clusterName = string(CLUSTER_NAME, "pdserve");
    JoinMode join =
        parse(
            CLUSTER_JOIN,
            s -> JoinMode.valueOf(upper(s)),
            JoinMode.TCPIP,
            "must be one of TCPIP, KUBERNETES, NONE");
    int clusterPort = port(CLUSTER_PORT, DEFAULT_CLUSTER_PORT);
    List<HostPort> members = members(join, advertised, clusterPort);
    String k8sService = string(CLUSTER_K8S_SERVICE, "");
    String k8sNamespace = string(CLUSTER_K8S_NAMESPACE, "default");
    if (join == JoinMode.KUBERNETES && k8sService.isEmpty()) {
      problems.add(
          CLUSTER_K8S_SERVICE
              + ": required when "
              + CLUSTER_JOIN
              + " is KUBERNETES (the headless Service name)");
    }
    int heartbeat = intIn(CLUSTER_HEARTBEAT_SECONDS, 1, 1, 300);
    int maxNoHeartbeat = intIn(CLUSTER_MAX_NO_HEARTBEAT_SECONDS, 5, 2, 3600);
    if (maxNoHeartbeat <= heartbeat) {
      fail(
          CLUSTER_MAX_NO_HEARTBEAT_SECONDS,
          "must be greater than "
              + CLUSTER_HEARTBEAT_SECONDS
              + " ("
              + heartbeat
              + "), got "
              + maxNoHeartbeat);
    }
    int joinWait = intIn(CLUSTER_JOIN_WAIT_SECONDS, 2, 0, 300);
    int minSize = intIn(CLUSTER_MIN_SIZE, 1, 1, 1000);
    boolean lite = bool(CLUSTER_LITE_MEMBER, false);
    ClusterSettings cluster =
        new ClusterSettings(
            clusterName,
            join,
            members,
            k8sService,
            k8sNamespace,
            clusterPort,
            heartbeat,
            maxNoHeartbeat,
            joinWait,
            minSize,
            lite);

    long kvBudget = bytes(KV_BUDGET_BYTES, 1L << 30);
    if (kvBudget < 0) {
      kvBudget = 0;
    }
    Optional<ExpertRange> range =
        Optional.ofNullable(parse(EXPERT_RANGE, ExpertRange::parse, null));
    String preset = string(MODEL_PRESET, "tiny");
    Optional<Path> modelDir = Optional.ofNullable(string(MODEL_DIR, null)).map(Path::of);
    if (modelDir.isPresent()) {
      if (!Files.isDirectory(modelDir.get())) {
        fail(MODEL_DIR, "no such directory: " + modelDir.get());
      }
    } else if (!ModelPresets.names().contains(preset)) {
      fail(
          MODEL_PRESET,
          "unknown preset '"
              + preset
              + "'; known presets: "
              + String.join(", ", ModelPresets.names()));
    }
    int ortThreads = intIn(ORT_THREADS, 0, 0, 1024);
    boolean ortCuda =
        parse(
            ORT_EXECUTION_PROVIDER,
            s ->
                switch (s.trim().toLowerCase(Locale.ROOT)) {
                  case "cpu" -> false;
                  case "cuda" -> true;
                  default -> throw new IllegalArgumentException();
                },
            false,
            "must be cpu or cuda (cuda needs the GPU build: mvn -Pgpu, or the -gpu image)");
    long modelSeed = 42;
    String seedText = string(MODEL_SEED, null);
    if (seedText != null) {
      try {
        modelSeed = Long.parseLong(seedText.trim());
      } catch (NumberFormatException e) {
        fail(MODEL_SEED, "must be an integer, got '" + seedText + "'");
      }
    }
    ExpertsMode expertsMode = parse(EXPERTS_MODE, ExpertsMode::parse, ExpertsMode.LOCAL);
    int chunk = intIn(PREFILL_CHUNK_TOKENS, 512, 1, 1 << 20);
    int maxBatch = intIn(DECODE_MAX_BATCH, 64, 1, 4096);
    EngineSettings engine =
        new EngineSettings(
            kvBudget,
            range,
            preset,
            modelDir,
            ortThreads,
            modelSeed,
            expertsMode,
            chunk,
            maxBatch,
            ortCuda);

    int lease = intIn(KV_LEASE_SECONDS, PrefixSettings.DEFAULT_LEASE_SECONDS, 1, 3600);
    boolean prefixCache = bool(PREFILL_PREFIX_CACHE, true);
    int localThreshold =
        intIn(
            ROUTER_LOCAL_PREFILL_THRESHOLD,
            PrefixSettings.DEFAULT_LOCAL_PREFILL_THRESHOLD,
            0,
            1 << 20);
    double weight = PrefixSettings.DEFAULT_CACHED_TOKEN_WEIGHT;
    String weightText = string(ROUTER_PREFIX_CACHE_WEIGHT, null);
    if (weightText != null) {
      try {
        weight = Double.parseDouble(weightText);
        if (!(weight >= 0) || Double.isInfinite(weight)) {
          throw new NumberFormatException();
        }
      } catch (NumberFormatException e) {
        fail(ROUTER_PREFIX_CACHE_WEIGHT, "must be a number >= 0, got '" + weightText + "'");
        weight = PrefixSettings.DEFAULT_CACHED_TOKEN_WEIGHT;
      }
    }
    PrefixSettings prefix = new PrefixSettings(lease, prefixCache, localThreshold, weight);
    CoordinatorConfig d = CoordinatorConfig.DEFAULTS;
    CoordinatorConfig coordinator =
        new CoordinatorConfig(
            bool(COORDINATOR_ENABLED, d.enabled()),
            java.time.Duration.ofMillis(
                intIn(COORDINATOR_PERIOD_MS, (int) d.period().toMillis(), 10, 3_600_000)),
            java.time.Duration.ofSeconds(
                intIn(
                    ROLE_SWITCH_DRAIN_TIMEOUT_SECONDS,
                    (int) d.drainTimeout().toSeconds(),
                    1,
                    86_400)),
            intIn(COORDINATOR_TTFT_TARGET_MS, (int) d.ttftTargetMillis(), 1, 3_600_000),
            intIn(COORDINATOR_TPOT_TARGET_MS, (int) d.tpotTargetMillis(), 1, 3_600_000));

    ExpertSharding sharding = expertSharding(nodeId, role, range.isPresent());
    ShutdownSettings shutdown = ShutdownSettings.DEFAULTS;
    String shutdownText = string(SHUTDOWN_TIMEOUT_SECONDS, null);
    if (shutdownText != null) {
      try {
        shutdown = new ShutdownSettings(ShutdownSettings.parseTimeout(shutdownText));
      } catch (IllegalArgumentException e) {
        fail(SHUTDOWN_TIMEOUT_SECONDS, e.getMessage());
      }
    }

    if (!problems.isEmpty()) {
      throw new NodeConfigException(problems);
    }
    return new NodeConfig(
        nodeId, role, network, cluster, engine, prefix, coordinator, sharding, shutdown);
  }

  /**
   * {@code pdserve.expert.shard-count} / {@code -index}: consistent with each other and with {@code
   * pdserve.expert.range}; an expert node without an index needs an ordinal in its id.
   */
  private ExpertSharding expertSharding(String nodeId, NodeRole role, boolean rangeSet) {
    boolean countSet = values.containsKey(EXPERT_SHARD_COUNT);
    boolean indexSet = values.containsKey(EXPERT_SHARD_INDEX);
    if (!countSet) {
      if (indexSet) {
        fail(
            EXPERT_SHARD_INDEX,
            "needs " + EXPERT_SHARD_COUNT + " (the number of shards the experts are split into)");
      }
      return ExpertSharding.NONE;
    }
    int count = intIn(EXPERT_SHARD_COUNT, 0, 1, 1 << 16);
    if (count < 1) {
      return ExpertSharding.NONE;
    }
    if (rangeSet) {
      fail(
          EXPERT_SHARD_COUNT,
          "set together with "
              + EXPERT_RANGE
              + "; give a shard either an explicit range (--experts) or a shard count, not both");
      return ExpertSharding.NONE;
    }
    java.util.OptionalInt index = java.util.OptionalInt.empty();
    if (indexSet) {
      int i = intIn(EXPERT_SHARD_INDEX, -1, 0, count - 1);
      if (i < 0) {
        return ExpertSharding.NONE;
      }
      index = java.util.OptionalInt.of(i);
    } else if (role == NodeRole.EXPERT && ExpertSharding.ordinalOf(nodeId).isEmpty()) {
      fail(EXPERT_SHARD_COUNT, ExpertSharding.noOrdinal(nodeId));
      return ExpertSharding.NONE;
    }
    return new ExpertSharding(java.util.OptionalInt.of(count), index);
  }

  private List<HostPort> members(JoinMode join, String host, int clusterPort) {
    String text = string(CLUSTER_MEMBERS, null);
    List<HostPort> out = new ArrayList<>();
    if (text == null) {
      if (join == JoinMode.TCPIP && clusterPort != 0) {
        for (int p = clusterPort; p < clusterPort + DEFAULT_SEED_PORTS && p <= 65535; p++) {
          out.add(new HostPort(host, p));
        }
      }
      return out;
    }
    for (String part : text.split(",")) {
      if (part.isBlank()) {
        continue;
      }
      try {
        out.add(HostPort.parse(part));
      } catch (IllegalArgumentException e) {
        fail(CLUSTER_MEMBERS, e.getMessage());
      }
    }
    return out;
  }

  private void distinctPorts(int grpc, int flight, int metrics, int http) {
    if (grpc != 0 && grpc == flight) {
      fail(FLIGHT_PORT, "must differ from " + GRPC_PORT + " (both " + grpc + ")");
    }
    if (metrics != 0 && (metrics == grpc || metrics == flight)) {
      fail(METRICS_PORT, "must differ from the gRPC and Flight ports (" + metrics + ")");
    }
    if (http != 0 && (http == grpc || http == flight || http == metrics)) {
      fail(HTTP_PORT, "must differ from the gRPC, Flight and metrics ports (" + http + ")");
    }
  }

  private static boolean isWildcard(String host) {
    try {
      return InetAddress.getByName(host).isAnyLocalAddress();
    } catch (Exception e) {
      return false;
    }
  }

  private static String upper(String s) {
    return s.trim().toUpperCase(Locale.ROOT);
  }

  // ---- typed readers: record a problem naming the key and return the default on failure ----

  private String string(String key, String dflt) {
    return values.getOrDefault(key, dflt);
  }

  private int port(String key, int dflt) {
    return intIn(key, dflt, 0, 65535);
  }

  private int intIn(String key, int dflt, int min, int max) {
    String v = values.get(key);
    if (v == null) {
      return dflt;
    }
    long n;
    try {
      n = Long.parseLong(v);
    } catch (NumberFormatException e) {
      fail(key, "must be an integer " + min + ".." + max + ", got '" + v + "'");
      return dflt;
    }
    if (n < min || n > max) {
      fail(key, "must be " + min + ".." + max + ", got " + n);
      return dflt;
    }
    return (int) n;
  }

  private boolean bool(String key, boolean dflt) {
    String v = values.get(key);
    if (v == null) {
      return dflt;
    }
    if (v.equalsIgnoreCase("true")) {
      return true;
    }
    if (v.equalsIgnoreCase("false")) {
      return false;
    }
    fail(key, "must be true or false, got '" + v + "'");
    return dflt;
  }

  /**
   * Bytes: a plain number, or a number with a binary suffix k/m/g/t (KiB, MiB, GiB, TiB also
   * accepted).
   */
  private long bytes(String key, long dflt) {
    String v = values.get(key);
    if (v == null) {
      return dflt;
    }
    var m = SIZE.matcher(v);
    if (!m.matches()
        || (m.group(2) != null
            && m.group(2).length() == 2
            && !m.group(2).toLowerCase(Locale.ROOT).endsWith("i"))) {
      fail(key, "expected a byte count like 1073741824, 512MiB or 4g, got '" + v + "'");
      return dflt;
    }
    int shift = 0;
    if (m.group(2) != null) {
      shift =
          switch (Character.toLowerCase(m.group(2).charAt(0))) {
            case 'k' -> 10;
            case 'm' -> 20;
            case 'g' -> 30;
            default -> 40;
          };
    }
    try {
      long n = Long.parseLong(m.group(1));
      if (n > (Long.MAX_VALUE >> shift)) {
        throw new NumberFormatException();
      }
      return n << shift;
    } catch (NumberFormatException e) {
      fail(key, "too large: '" + v + "'");
      return dflt;
    }
  }

  private <T> T parse(String key, Function<String, T> parser, T dflt) {
    return parse(key, parser, dflt, null);
  }

  private <T> T parse(String key, Function<String, T> parser, T dflt, String message) {
    String v = values.get(key);
    if (v == null) {
      return dflt;
    }
    try {
      return parser.apply(v);
    } catch (IllegalArgumentException e) {
      fail(key, message != null ? message + ", got '" + v + "'" : e.getMessage());
      return dflt;
    }
  }

  private void fail(String key, String message) {
    String origin = origins.get(key);
    problems.add(key + ": " + message + (origin != null ? " (from " + origin + ")" : ""));
  }
}
