package dev.pdserve.core.config;

import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.WeightQuantization;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * Every configuration key a pdserve node reads, each described once, in documentation order ({@link
 * #ALL}). The loader refuses keys not listed here, reads each key's {@code PDSERVE_*} variable, and
 * parses values with the key's {@link ValueType}; the README's configuration table is rendered from
 * this list ({@code ConfigReferenceTest}). Rules between keys (ports that must differ, a heartbeat
 * bound above the interval) live where the settings are read, in {@link NodeConfigLoader}.
 */
public final class ConfigKeys {
  private static final List<ConfigKey<?>> DECLARED = new ArrayList<>();

  private static final Pattern NODE_ID_PATTERN =
      Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");
  private static final ValueType.Int PORT = new ValueType.Int(0, 65535);
  private static final ValueType.ByteSize MESSAGE_SIZE =
      new ValueType.ByteSize(1024, Integer.MAX_VALUE, "1KiB..2GiB");
  private static final ValueType.Bool BOOL = new ValueType.Bool();
  private static final ValueType.RegularFile FILE = new ValueType.RegularFile();

  public static final ConfigKey<String> NODE_ID =
      define(
          ConfigKey.withoutDefault(
              "pdserve.node.id",
              ValueType.Text.matching(
                  NODE_ID_PATTERN,
                  "must be 1..128 characters of letters, digits, '.', '_' or '-' starting with a"
                      + " letter or digit",
                  "1..128 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit"),
              "generated",
              "stable id of the node in the registry; unset: the host name and a random suffix,"
                  + " new for each process"));
  public static final ConfigKey<NodeRole> ROLE =
      define(
          ConfigKey.withoutDefault(
              "pdserve.role",
              ValueType.Choice.of(NodeRole.class),
              "(required)",
              "the role the node starts in; `pdserve worker` takes its starting role from here"
                  + " when `--role` is not given (how the Kubernetes StatefulSets set it)"));
  public static final ConfigKey<String> BIND_HOST =
      define(
          ConfigKey.of(
              "pdserve.bind.host",
              ValueType.Text.any("a host name or IP address"),
              "127.0.0.1",
              "interface the servers listen on; `0.0.0.0` for all of them"));
  public static final ConfigKey<String> ADVERTISED_HOST =
      define(
          ConfigKey.withoutDefault(
              "pdserve.advertised.host",
              ValueType.Text.any("a host name or IP address"),
              "the bind host",
              "how other nodes reach this one (e.g. the pod IP); required when the bind host is a"
                  + " wildcard address"));
  public static final ConfigKey<Integer> GRPC_PORT =
      define(ConfigKey.of("pdserve.grpc.port", PORT, 0, "gRPC port; 0 = any free port"));
  public static final ConfigKey<Long> GRPC_MAX_INBOUND_BYTES =
      define(
          ConfigKey.of(
              "pdserve.grpc.max-inbound-bytes",
              MESSAGE_SIZE,
              4L << 20,
              "largest gRPC message the node accepts"));
  public static final ConfigKey<Integer> FLIGHT_PORT =
      define(
          ConfigKey.of(
              "pdserve.flight.port",
              PORT,
              0,
              "Arrow Flight (KV transfer) port; 0 = any free port"));
  public static final ConfigKey<Integer> METRICS_PORT =
      define(
          ConfigKey.of(
              "pdserve.metrics.port",
              PORT,
              0,
              "Prometheus `/metrics` HTTP port (`--metrics-port`), 0 = any free port; the URL is"
                  + " published in the node's registry entry"));
  public static final ConfigKey<Integer> HTTP_PORT =
      define(
          ConfigKey.of(
              "pdserve.http.port",
              PORT,
              0,
              "router: port of the OpenAI-compatible HTTP API; 0 = any free port"));
  public static final ConfigKey<Long> HTTP_MAX_BODY_BYTES =
      define(
          ConfigKey.of(
              "pdserve.http.max-body-bytes",
              MESSAGE_SIZE,
              (long) NetworkSettings.DEFAULT_HTTP_MAX_BODY_BYTES,
              "router: largest HTTP request body (larger: 413)"));
  public static final ConfigKey<Boolean> TLS_ENABLED =
      define(
          ConfigKey.of(
              "pdserve.tls.enabled",
              BOOL,
              false,
              "mutual TLS on every gRPC and Flight connection between nodes (`--tls`): each side"
                  + " presents pdserve.tls.cert and accepts only peers whose certificate"
                  + " pdserve.tls.ca signed"));
  public static final ConfigKey<Path> TLS_CERT =
      define(
          ConfigKey.withoutDefault(
              "pdserve.tls.cert",
              FILE,
              "(required with TLS)",
              "the node's certificate chain, PEM (a Kubernetes TLS secret's `tls.crt`)"));
  public static final ConfigKey<Path> TLS_KEY =
      define(
          ConfigKey.withoutDefault(
              "pdserve.tls.key",
              FILE,
              "(required with TLS)",
              "the private key of pdserve.tls.cert, PEM (PKCS#8, PKCS#1 or SEC1, unencrypted;"
                  + " `tls.key`)"));
  public static final ConfigKey<Path> TLS_CA =
      define(
          ConfigKey.withoutDefault(
              "pdserve.tls.ca",
              FILE,
              "(required with TLS)",
              "the cluster CA, PEM (`ca.crt`): a peer is let in only with a certificate it signed"));
  public static final ConfigKey<Duration> TLS_RELOAD_INTERVAL =
      define(
          ConfigKey.of(
              "pdserve.tls.reload-interval",
              new ValueType.Timeout(),
              TlsSettings.DEFAULT_RELOAD_INTERVAL,
              "how often the certificate, key and CA files are read again (a rotated secret takes"
                  + " effect on new connections without a restart); 0 = never"));
  public static final ConfigKey<Boolean> ROUTER_TLS_ENABLED =
      define(
          ConfigKey.of(
              "pdserve.router.tls.enabled",
              BOOL,
              false,
              "router: TLS on the public gRPC and HTTP APIs (HTTPS), with pdserve.router.tls.cert"));
  public static final ConfigKey<Path> ROUTER_TLS_CERT =
      define(
          ConfigKey.withoutDefault(
              "pdserve.router.tls.cert",
              FILE,
              "pdserve.tls.cert",
              "router: the public APIs' certificate chain, PEM (e.g. one a public CA signed)"));
  public static final ConfigKey<Path> ROUTER_TLS_KEY =
      define(
          ConfigKey.withoutDefault(
              "pdserve.router.tls.key",
              FILE,
              "pdserve.tls.key",
              "router: the private key of pdserve.router.tls.cert, PEM"));
  public static final ConfigKey<Path> ROUTER_TLS_CLIENT_CA =
      define(
          ConfigKey.withoutDefault(
              "pdserve.router.tls.client-ca",
              FILE,
              "no client certificates",
              "router: when set, public clients must present a certificate this CA signed"));
  public static final ConfigKey<String> CLUSTER_NAME =
      define(
          ConfigKey.of(
              "pdserve.cluster.name",
              ValueType.Text.any("any name"),
              "pdserve",
              "Hazelcast cluster name; members with another name never join each other"));
  public static final ConfigKey<JoinMode> CLUSTER_JOIN =
      define(
          ConfigKey.of(
              "pdserve.cluster.join",
              ValueType.Choice.of(JoinMode.class),
              JoinMode.TCPIP,
              "how members find each other: TCPIP (member list), KUBERNETES (DNS of a headless"
                  + " Service) or NONE (a single-member cluster)"));
  public static final ConfigKey<List<HostPort>> CLUSTER_MEMBERS =
      define(
          ConfigKey.withoutDefault(
              "pdserve.cluster.members",
              new ValueType.HostPorts(),
              "TCPIP: the advertised host, the cluster port and the next "
                  + (NodeConfigLoader.DEFAULT_SEED_PORTS - 1)
                  + " ("
                  + NodeConfigLoader.DEFAULT_CLUSTER_PORT
                  + "-"
                  + (NodeConfigLoader.DEFAULT_CLUSTER_PORT
                      + NodeConfigLoader.DEFAULT_SEED_PORTS
                      - 1)
                  + ")",
              "TCPIP seed members to join, one by one (port ranges are refused)"));
  public static final ConfigKey<String> CLUSTER_K8S_SERVICE =
      define(
          ConfigKey.of(
              "pdserve.cluster.kubernetes.service",
              ValueType.Text.any("a Service name"),
              "",
              "KUBERNETES join (required there): the headless Service whose DNS lists the"
                  + " members; a bare name is qualified with the namespace"));
  public static final ConfigKey<String> CLUSTER_K8S_NAMESPACE =
      define(
          ConfigKey.of(
              "pdserve.cluster.kubernetes.namespace",
              ValueType.Text.any("a namespace"),
              "default",
              "namespace of that Service"));
  public static final ConfigKey<Integer> CLUSTER_PORT =
      define(
          ConfigKey.of(
              "pdserve.cluster.port",
              PORT,
              NodeConfigLoader.DEFAULT_CLUSTER_PORT,
              "Hazelcast member port (the next ones are tried when it is taken); 0 = any"));
  public static final ConfigKey<Integer> CLUSTER_HEARTBEAT_SECONDS =
      define(
          ConfigKey.of(
              "pdserve.cluster.heartbeat-interval-seconds",
              new ValueType.Int(1, 300),
              1,
              "how often members heartbeat each other"));
  public static final ConfigKey<Integer> CLUSTER_MAX_NO_HEARTBEAT_SECONDS =
      define(
          ConfigKey.of(
              "pdserve.cluster.max-no-heartbeat-seconds",
              new ValueType.Int(2, 3600),
              5,
              "a member silent this long is removed (a dead or frozen node leaves within ~5 s);"
                  + " above the heartbeat interval"));
  public static final ConfigKey<Integer> CLUSTER_JOIN_WAIT_SECONDS =
      define(
          ConfigKey.of(
              "pdserve.cluster.join-wait-seconds",
              new ValueType.Int(0, 300),
              2,
              "how long a starting member waits for others before it forms a cluster"));
  public static final ConfigKey<Integer> CLUSTER_MIN_SIZE =
      define(
          ConfigKey.of(
              "pdserve.cluster.min-size",
              new ValueType.Int(1, 1000),
              1,
              "split-brain protection: below this many members the registry refuses reads and"
                  + " writes; 1 = off"));
  public static final ConfigKey<Boolean> CLUSTER_LITE_MEMBER =
      define(
          ConfigKey.of(
              "pdserve.cluster.lite-member",
              BOOL,
              false,
              "member without registry data (owns no partitions); `pdserve router` sets it true"));
  public static final ConfigKey<FailureDetection.Detector> CLUSTER_FAILURE_DETECTOR =
      define(
          ConfigKey.of(
              "pdserve.cluster.failure-detector",
              ValueType.Choice.of(FailureDetection.Detector.class),
              FailureDetection.DEFAULTS.detector(),
              "Hazelcast's heartbeat failure detector: PHI_ACCRUAL (suspicion from the silence"
                  + " against the recent heartbeat intervals, max-no-heartbeat-seconds tolerated;"
                  + " see docs/RELIABILITY.md) or DEADLINE (removed after max-no-heartbeat-seconds"
                  + " of silence)"));
  public static final ConfigKey<Double> CLUSTER_PHI_THRESHOLD =
      define(
          ConfigKey.of(
              "pdserve.cluster.phi-threshold",
              new ValueType.NonNegativeDecimal(),
              FailureDetection.DEFAULTS.phiThreshold(),
              "PHI_ACCRUAL: suspicion level at which a silent member is removed"));
  public static final ConfigKey<Integer> CLUSTER_MERGE_INTERVAL_SECONDS =
      define(
          ConfigKey.of(
              "pdserve.cluster.merge-interval-seconds",
              new ValueType.Int(1, 3600),
              FailureDetection.DEFAULTS.mergeIntervalSeconds(),
              "how often a cut-off member (a frozen node that woke up alone, the small side of a"
                  + " split) looks for the cluster to merge back into as a new member"));
  public static final ConfigKey<Integer> CLUSTER_QUORUM_WINDOW_SECONDS =
      define(
          ConfigKey.of(
              "pdserve.cluster.quorum-window-seconds",
              new ValueType.Int(1, 86400),
              FailureDetection.DEFAULTS.quorumWindowSeconds(),
              "the coordinator lease may be taken or used only by a side holding a majority of the"
                  + " largest cluster seen within this window (a node alone after a freeze never"
                  + " coordinates)"));
  public static final ConfigKey<String> AUTH_API_KEYS_FILE =
      define(
          ConfigKey.withoutDefault(
              "pdserve.auth.api-keys-file",
              ValueType.Text.any("a readable file"),
              "none: public routes open",
              "API keys, one a line (blank lines and `#` comments ignored), re-read within 2 s of"
                  + " a change (`--api-keys-file`); set, every public route — the router's gRPC and"
                  + " HTTP APIs, admin, node status, reflection — needs `Authorization: Bearer KEY`"
                  + " (HTTP 401 / gRPC UNAUTHENTICATED otherwise); needs"
                  + " pdserve.auth.cluster-token-file"));
  public static final ConfigKey<String> AUTH_CLUSTER_TOKEN_FILE =
      define(
          ConfigKey.withoutDefault(
              "pdserve.auth.cluster-token-file",
              ValueType.Text.any("a readable file"),
              "none: node-internal routes open",
              "the cluster token: node-internal routes (prefill, decode, role switching, expert"
                  + " dispatch) need it and this node's clients send it (the first line; every line"
                  + " is accepted, so a rotation can list old and new); re-read within 2 s of a"
                  + " change; every node must share it"));
  public static final ConfigKey<Boolean> AUTH_METRICS_OPEN =
      define(
          ConfigKey.of(
              "pdserve.auth.metrics-open",
              BOOL,
              AuthSettings.OFF.metricsOpen(),
              "with API keys: `/metrics` answers without a key (else it needs an API key or the"
                  + " cluster token, e.g. Prometheus' `authorization` scrape setting)"));
  public static final ConfigKey<Boolean> AUTH_HEALTH_OPEN =
      define(
          ConfigKey.of(
              "pdserve.auth.health-open",
              BOOL,
              AuthSettings.OFF.healthOpen(),
              "with API keys: gRPC health and HTTP `/health` answer without a key (Kubernetes"
                  + " probes send none)"));
  public static final ConfigKey<Long> KV_BUDGET_BYTES =
      define(
          ConfigKey.of(
              "pdserve.kv.budget-bytes",
              new ValueType.ByteSize(),
              1L << 30,
              "paged KV pool of a worker (fixed budget)"));
  public static final ConfigKey<KvDtype> KV_DTYPE =
      define(
          ConfigKey.of(
              "pdserve.kv.dtype",
              ValueType.Choice.ofLowerCase(KvDtype.class, KvDtype.MUST_BE),
              KvDtype.FP32,
              "element type of a worker's KV cache (`--kv-dtype`): keys and values are rounded"
                  + " to it when computed, stored and sent in it (fp16/bf16: half the bytes, twice"
                  + " the blocks); every worker, and a reference engine compared with, must agree"));
  public static final ConfigKey<QuantMode> MODEL_QUANTIZATION =
      define(
          ConfigKey.of(
              "pdserve.model.quantization",
              quantModes(),
              QuantMode.NONE,
              "weight-only quantization of the linear layers (`--quantization`), computed with"
                  + " ONNX Runtime's MatMulNBits: int8 and int4 quantize routed and shared"
                  + " experts, dense MLP, attention projections and LM head; int2-mixed keeps the"
                  + " first MoE layers' experts at 4 bits, the later ones at 2, the dense parts at"
                  + " 8 (FastDeploy's WINT2 recipe); embeddings, norms and gates stay fp32; every"
                  + " node, and a reference engine compared with, must agree"));
  public static final ConfigKey<Integer> MODEL_QUANTIZATION_BLOCK_SIZE =
      define(
          ConfigKey.of(
              "pdserve.model.quantization-block-size",
              blockSizes(),
              WeightQuantization.DEFAULT_BLOCK_SIZE,
              "weights per scale (and zero point) along the input dimension"
                  + " (`--quantization-block-size`); smaller is more accurate and larger"));
  public static final ConfigKey<ExpertRange> EXPERT_RANGE =
      define(
          ConfigKey.withoutDefault(
              "pdserve.expert.range",
              new ValueType.Experts(),
              "all experts",
              "expert shard: the routed-expert indices it hosts (`--experts`); not together with"
                  + " pdserve.expert.shard-count"));
  public static final ConfigKey<String> MODEL_PRESET =
      define(
          ConfigKey.of(
              "pdserve.model.preset",
              new ValueType.Preset(),
              "tiny",
              "built-in model shape, unless pdserve.model.dir is set (every node must agree)"));
  public static final ConfigKey<Path> MODEL_DIR =
      define(
          ConfigKey.withoutDefault(
              "pdserve.model.dir",
              new ValueType.Directory(),
              "",
              "directory of an ERNIE checkpoint (`config.json`, safetensors); replaces the"
                  + " preset (every node must agree)"));
  public static final ConfigKey<String> MODEL_SERVED_NAME =
      define(
          ConfigKey.withoutDefault(
              "pdserve.model.served-name",
              ValueType.Text.matching(
                  Pattern.compile("[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}"),
                  "must be 1..128 characters of letters, digits, '.', '_', ':', '/' or '-'"
                      + " starting with a letter or digit",
                  "1..128 of `A-Z a-z 0-9 . _ : / -`"),
              "the model directory's name, or the preset's",
              "name the model is served under (`--served-model-name`, as vLLM's): `/v1/models`"
                  + " lists it, responses carry it, a request naming another model gets 404"));
  public static final ConfigKey<Long> NODE_MEMORY_LIMIT =
      define(
          ConfigKey.of(
              "pdserve.node.memory-limit",
              new ValueType.ByteSize(),
              0L,
              "memory a worker's or expert shard's share of the model (weights at its precision,"
                  + " KV pool, activations) must fit in; 0 = the machine's physical memory. A node"
                  + " that cannot fit refuses to start, saying how much it needs and has"));
  public static final ConfigKey<Integer> ORT_THREADS =
      define(
          ConfigKey.of(
              "pdserve.ort.threads",
              new ValueType.Int(0, 1024),
              0,
              "ONNX Runtime intra-op threads; 0 = all cores"));
  public static final ConfigKey<Boolean> ORT_EXECUTION_PROVIDER =
      define(
          ConfigKey.of(
              "pdserve.ort.execution-provider",
              new ValueType.Choice<>(
                  executionProviders(),
                  "must be cpu or cuda (cuda needs the GPU build: mvn -Pgpu, or the -gpu image)"),
              false,
              "`cuda` needs the GPU build (`mvn -Pgpu` / the `-gpu` image); a CPU build refuses to"
                  + " start with a message saying so"));
  public static final ConfigKey<Long> MODEL_SEED =
      define(
          ConfigKey.of(
              "pdserve.model.seed",
              new ValueType.LongInt(),
              42L,
              "seed of a preset's dummy weights (every node must agree)"));
  public static final ConfigKey<ExpertsMode> EXPERTS_MODE =
      define(
          ConfigKey.of(
              "pdserve.experts.mode",
              ValueType.Choice.ofLowerCase(ExpertsMode.class, "must be local or remote"),
              ExpertsMode.LOCAL,
              "worker: routed experts in its own process, or `remote` on expert shards"));
  public static final ConfigKey<Integer> PREFILL_CHUNK_TOKENS =
      define(
          ConfigKey.of(
              "pdserve.prefill.chunk-tokens",
              new ValueType.Int(1, 1 << 20),
              512,
              "long prompts are prefilled in chunks of at most this many tokens"));
  public static final ConfigKey<Integer> DECODE_MAX_BATCH =
      define(
          ConfigKey.of(
              "pdserve.decode.max-batch",
              new ValueType.Int(1, 4096),
              64,
              "sequences per decode step at most"));
  public static final ConfigKey<Long> VISION_ENCODER_CACHE_BYTES =
      define(
          ConfigKey.of(
              "pdserve.vision.encoder-cache-bytes",
              new ValueType.ByteSize(),
              EngineSettings.DEFAULT_ENCODER_CACHE_BYTES,
              "worker of a vision model: encoded images kept by digest (LRU) so an image sent"
                  + " again skips the vision encoder; 0 = keep none"));
  public static final ConfigKey<Integer> KV_LEASE_SECONDS =
      define(
          ConfigKey.of(
              "pdserve.kv.lease-seconds",
              new ValueType.Int(1, 3600),
              PrefixSettings.DEFAULT_LEASE_SECONDS,
              "a decode reservation (and its running request) is freed when its router has not"
                  + " renewed it for this long (the router renews every lease/3)"));
  public static final ConfigKey<KvFailurePolicy> KV_FAILURE_POLICY =
      define(
          ConfigKey.of(
              "pdserve.kv.failure-policy",
              ValueType.Choice.ofLowerCase(KvFailurePolicy.class, "must be recompute or fail"),
              RouterConfig.DEFAULTS.kvFailurePolicy(),
              "router: a prefill node failing during a prefill or its KV push — `recompute` the"
                  + " KV (a fresh decode reservation, the prefill on another prefill node, up to 2"
                  + " tries) or `fail` the request with UNAVAILABLE"));
  public static final ConfigKey<Boolean> PREFILL_PREFIX_CACHE =
      define(
          ConfigKey.of(
              "pdserve.prefill.prefix-cache",
              BOOL,
              PrefixSettings.DEFAULTS.prefixCache(),
              "prefill nodes keep prompts' full KV blocks (LRU, evicted on demand) and reuse them"
                  + " for prompts sharing a prefix"));
  public static final ConfigKey<Integer> ROUTER_LOCAL_PREFILL_THRESHOLD =
      define(
          ConfigKey.of(
              "pdserve.router.local-prefill-threshold",
              new ValueType.Int(0, 1 << 20),
              PrefixSettings.DEFAULT_LOCAL_PREFILL_THRESHOLD,
              "prompts of at most this many tokens are prefilled by the decode node itself, no KV"
                  + " transfer; 0 = never"));
  public static final ConfigKey<Double> ROUTER_PREFIX_CACHE_WEIGHT =
      define(
          ConfigKey.of(
              "pdserve.router.prefix-cache-weight",
              new ValueType.NonNegativeDecimal(),
              PrefixSettings.DEFAULT_CACHED_TOKEN_WEIGHT,
              "α in the router's prefill score `queued tokens − α · cached prefix tokens`"));
  public static final ConfigKey<Integer> ROUTER_MIGRATION_LIMIT =
      define(
          ConfigKey.of(
              "pdserve.router.migration-limit",
              new ValueType.Int(0, 100),
              RouterConfig.DEFAULT_MIGRATION_LIMIT,
              "times one request may continue on another decode node after its node failed or"
                  + " went silent (a fresh reservation, the prompt and the tokens already sent"
                  + " prefilled again, then resumed); past it the request fails with one"
                  + " UNAVAILABLE; 0 = never"));
  public static final ConfigKey<Duration> ROUTER_STREAM_SILENCE_TIMEOUT =
      define(
          ConfigKey.of(
              "pdserve.router.stream-silence-timeout",
              new ValueType.Timeout(),
              RouterConfig.DEFAULT_STREAM_SILENCE_TIMEOUT,
              "a decode stream with no message for this long (a frozen or unreachable node) is"
                  + " given up and its request continues on another decode node; sooner (1 s of"
                  + " silence) once the node has left the registry; 0 = never. Decode streams"
                  + " carry a token every step; healthy nodes on a loaded 2-core machine stalled"
                  + " up to ~5 s"));
  public static final ConfigKey<Duration> ROUTER_MAX_QUEUE_DELAY =
      define(
          ConfigKey.withoutDefault(
              "pdserve.router.max-queue-delay",
              new ValueType.Timeout(),
              RouterConfig.MAX_QUEUE_DELAY_PER_TTFT_TARGET
                  + " × pdserve.coordinator.ttft-target-ms ("
                  + new ValueType.Timeout().format(RouterConfig.DEFAULT_MAX_QUEUE_DELAY)
                  + ")",
              "a request predicted to wait longer than this for the prompts ahead of it (queued"
                  + " prompt tokens over the measured prefill throughput) is refused at once with"
                  + " RESOURCE_EXHAUSTED / HTTP 429 and a Retry-After from the prediction; 0 ="
                  + " never"));
  public static final ConfigKey<Integer> ROUTER_PREFILL_TOKENS_PER_SECOND =
      define(
          ConfigKey.of(
              "pdserve.router.prefill-tokens-per-second",
              new ValueType.Int(1, 1_000_000_000),
              RouterConfig.DEFAULT_PREFILL_TOKENS_PER_SECOND,
              "one prefill node's prompt throughput the router assumes for that prediction until"
                  + " it has measured the cluster's (from requests' first tokens)"));
  public static final ConfigKey<Integer> ROUTER_IMAGES_MAX_PER_PROMPT =
      define(
          ConfigKey.of(
              "pdserve.router.images.max-per-prompt",
              new ValueType.Int(0, 1024),
              ImageIntakeSettings.DEFAULT_MAX_PER_PROMPT,
              "router: images one prompt may hold (more: 400); 0 = images refused"));
  public static final ConfigKey<Long> ROUTER_IMAGES_MAX_BYTES =
      define(
          ConfigKey.of(
              "pdserve.router.images.max-bytes",
              new ValueType.ByteSize(1, Integer.MAX_VALUE, "1..2GiB"),
              ImageIntakeSettings.DEFAULT_MAX_BYTES,
              "router: bytes of one encoded image (a data: URL decoded, a fetched body, a gRPC"
                  + " `Image.data`); more: 413, a fetch stopped as the body passes it. Keep the"
                  + " prompt's images under the workers' pdserve.grpc.max-inbound-bytes"));
  public static final ConfigKey<Integer> ROUTER_IMAGES_MAX_PIXELS =
      define(
          ConfigKey.of(
              "pdserve.router.images.max-pixels",
              new ValueType.Int(1, Integer.MAX_VALUE),
              (int) ImageIntakeSettings.DEFAULT_MAX_PIXELS,
              "router: width × height of one image as its header declares it (more: 400, before"
                  + " any pixel is decoded)"));
  public static final ConfigKey<Boolean> ROUTER_IMAGES_FETCH_ENABLED =
      define(
          ConfigKey.of(
              "pdserve.router.images.fetch-enabled",
              BOOL,
              false,
              "router: fetch `http(s)://` image URLs (data: URLs always work); hosts from"
                  + " pdserve.router.images.allowed-hosts only"));
  public static final ConfigKey<String> ROUTER_IMAGES_ALLOWED_HOSTS =
      define(
          ConfigKey.of(
              "pdserve.router.images.allowed-hosts",
              ValueType.Text.any("comma-separated host names, `*.domain`, or `*`"),
              "",
              "router: hosts image URLs may name (`img.example.com`, `*.example.com`, `*` for any);"
                  + " empty = none. Loopback, private, link-local and other non-public addresses"
                  + " are refused at every hop whatever the list says"));
  public static final ConfigKey<Duration> ROUTER_IMAGES_FETCH_TIMEOUT =
      define(
          ConfigKey.of(
              "pdserve.router.images.fetch-timeout",
              new ValueType.Timeout(),
              ImageIntakeSettings.DEFAULT_FETCH_TIMEOUT,
              "router: the longest one image URL's fetch may take, redirects included"));
  public static final ConfigKey<Integer> ROUTER_IMAGES_MAX_REDIRECTS =
      define(
          ConfigKey.of(
              "pdserve.router.images.max-redirects",
              new ValueType.Int(0, 10),
              ImageIntakeSettings.DEFAULT_MAX_REDIRECTS,
              "router: redirects one image fetch may follow (each hop's host checked again)"));
  public static final ConfigKey<Boolean> COORDINATOR_ENABLED =
      define(
          ConfigKey.of(
              "pdserve.coordinator.enabled",
              BOOL,
              CoordinatorConfig.DEFAULTS.enabled(),
              "worker may act as the coordinator (the oldest enabled worker does) and switch roles"
                  + " by policy"));
  public static final ConfigKey<Integer> COORDINATOR_PERIOD_MS =
      define(
          ConfigKey.of(
              "pdserve.coordinator.period-ms",
              new ValueType.Int(10, 3_600_000),
              (int) CoordinatorConfig.DEFAULTS.period().toMillis(),
              "how often the coordinator reads the registry and asks its policy"));
  public static final ConfigKey<Integer> COORDINATOR_TTFT_TARGET_MS =
      define(
          ConfigKey.of(
              "pdserve.coordinator.ttft-target-ms",
              new ValueType.Int(1, 3_600_000),
              (int) CoordinatorConfig.DEFAULTS.ttftTargetMillis(),
              "time-to-first-token target the switch policy balances"));
  public static final ConfigKey<Integer> COORDINATOR_TPOT_TARGET_MS =
      define(
          ConfigKey.of(
              "pdserve.coordinator.tpot-target-ms",
              new ValueType.Int(1, 3_600_000),
              (int) CoordinatorConfig.DEFAULTS.tpotTargetMillis(),
              "time-per-output-token target the switch policy balances"));
  public static final ConfigKey<Integer> ROLE_SWITCH_DRAIN_TIMEOUT_SECONDS =
      define(
          ConfigKey.of(
              "pdserve.role-switch.drain-timeout-seconds",
              new ValueType.Int(1, 86_400),
              (int) CoordinatorConfig.DEFAULTS.drainTimeout().toSeconds(),
              "a switching node still holding work after this returns to ACTIVE in its old role"));
  public static final ConfigKey<Integer> EXPERT_SHARD_COUNT =
      define(
          ConfigKey.withoutDefault(
              "pdserve.expert.shard-count",
              new ValueType.Int(1, 1 << 16),
              "",
              "expert shard without a range: split the experts into N contiguous ranges and host"
                  + " one (see The CLI)"));
  public static final ConfigKey<Integer> EXPERT_SHARD_INDEX =
      define(
          ConfigKey.withoutDefault(
              "pdserve.expert.shard-index",
              new ValueType.Int(0, (1 << 16) - 1),
              "node id's trailing `-<ordinal>` mod N",
              "expert shard: which of the N ranges it hosts, 0..N-1; needs"
                  + " pdserve.expert.shard-count"));
  public static final ConfigKey<Duration> SHUTDOWN_TIMEOUT_SECONDS =
      define(
          ConfigKey.of(
              "pdserve.shutdown.timeout-seconds",
              new ValueType.Timeout(),
              ShutdownSettings.DEFAULT_TIMEOUT,
              "how long a node drains on SIGTERM before it closes (`--shutdown-timeout`); 0 ="
                  + " close at once"));

  public static final ConfigKey<Integer> LOCAL_RESTART_LIMIT =
      define(
          ConfigKey.of(
              "pdserve.local.restart-limit",
              new ValueType.Int(0, 100),
              3,
              "`pdserve local`: times one child process that died is started again within"
                  + " pdserve.local.restart-window (each after a back-off doubling from 1 s to"
                  + " 30 s); past it the whole cluster stops; 0 = stop at the first death"));
  public static final ConfigKey<Duration> LOCAL_RESTART_WINDOW =
      define(
          ConfigKey.of(
              "pdserve.local.restart-window",
              new ValueType.Timeout(),
              Duration.ofMinutes(10),
              "`pdserve local`: restarts of a child older than this no longer count against"
                  + " pdserve.local.restart-limit"));

  /** Every key, in documentation order. */
  public static final List<ConfigKey<?>> ALL = List.copyOf(DECLARED);

  private static final Map<String, ConfigKey<?>> BY_NAME = byName();

  private ConfigKeys() {}

  /** The key named {@code name} ({@code pdserve.*}), if there is one. */
  public static Optional<ConfigKey<?>> find(String name) {
    return Optional.ofNullable(BY_NAME.get(name));
  }

  /** The names of {@link #ALL}. */
  public static List<String> names() {
    return ALL.stream().map(ConfigKey::name).toList();
  }

  private static <T> ConfigKey<T> define(ConfigKey<T> key) {
    DECLARED.add(key);
    return key;
  }

  private static Map<String, ConfigKey<?>> byName() {
    Map<String, ConfigKey<?>> m = new LinkedHashMap<>();
    for (ConfigKey<?> k : ALL) {
      if (m.put(k.name(), k) != null) {
        throw new IllegalStateException("config key described twice: " + k.name());
      }
    }
    return m;
  }

  private static Map<String, Boolean> executionProviders() {
    Map<String, Boolean> m = new LinkedHashMap<>();
    m.put("cpu", false);
    m.put("cuda", true);
    return m;
  }

  private static ValueType.Choice<QuantMode> quantModes() {
    Map<String, QuantMode> m = new LinkedHashMap<>();
    for (QuantMode q : QuantMode.values()) {
      m.put(q.configName(), q);
    }
    return new ValueType.Choice<>(m, QuantMode.MUST_BE);
  }

  private static ValueType.Choice<Integer> blockSizes() {
    Map<String, Integer> m = new LinkedHashMap<>();
    for (int b = 16; b <= 256; b *= 2) {
      m.put(Integer.toString(b), b);
    }
    return new ValueType.Choice<>(m, WeightQuantization.BLOCK_MUST_BE);
  }
}
