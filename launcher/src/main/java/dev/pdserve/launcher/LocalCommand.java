package dev.pdserve.launcher;

import com.google.common.base.Ticker;
import dev.pdserve.core.config.ConfigKey;
import dev.pdserve.core.config.ConfigKeys;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.launcher.node.ChildRestarts;
import dev.pdserve.launcher.node.ClusterTokens;
import dev.pdserve.launcher.node.LocalChild;
import dev.pdserve.launcher.node.LocalCluster;
import dev.pdserve.launcher.node.LocalSupervisor;
import dev.pdserve.launcher.node.LocalTls;
import dev.pdserve.model.config.KvDtype;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(
    name = "local",
    mixinStandardHelpOptions = true,
    description =
        "Run a local cluster: every node its own OS process on loopback, the built-in model by default.")
final class LocalCommand implements Callable<Integer> {
  @Spec CommandLine.Model.CommandSpec spec;

  @Option(
      names = "--prefill",
      defaultValue = "1",
      description = "Prefill workers. Default: ${DEFAULT-VALUE}.")
  int prefill;

  @Option(
      names = "--decode",
      defaultValue = "1",
      description = "Decode workers. Default: ${DEFAULT-VALUE}.")
  int decode;

  @Option(
      names = "--experts",
      defaultValue = "0",
      description = "Expert shards (0 = experts in each worker). Default: ${DEFAULT-VALUE}.")
  int experts;

  @Option(
      names = "--ready-file",
      paramLabel = "FILE",
      description =
          "Once every node is ACTIVE, write the router's gRPC host:port as the first line of FILE and http=<its HTTP base URL> as the second.")
  Path readyFile;

  @Option(
      names = "--preset",
      defaultValue = "tiny",
      description = "Built-in model. Default: ${DEFAULT-VALUE}.")
  String preset;

  @Option(
      names = "--model",
      paramLabel = "DIR",
      description = "Model directory instead of a preset.")
  String modelDir;

  @Option(names = "--seed-weights", defaultValue = "42")
  long seed;

  @Option(
      names = "--kv-budget",
      defaultValue = "256m",
      description = "KV pool per worker. Default: ${DEFAULT-VALUE}.")
  String kvBudget;

  @Option(
      names = "--kv-dtype",
      paramLabel = "DTYPE",
      converter = KvDtypeOption.class,
      description = KvDtypeOption.DESCRIPTION + " Given to every node. Default: fp32.")
  KvDtype kvDtype;

  @Mixin QuantizationOptions quantization;

  @Option(
      names = "--low-bit-dummy-weights",
      description =
          "Every node generates the preset's quantized matrices directly in their low-bit format"
              + " (key pdserve.model.low-bit-dummy-weights; needs --quantization int8, int4 or"
              + " int2-mixed): seconds at full size instead of quantizing fp32 dummy weights.")
  boolean lowBitDummyWeights;

  @Option(
      names = "--log-level",
      defaultValue = "INFO",
      description = "Log level of the nodes. Default: ${DEFAULT-VALUE}.")
  String logLevel;

  @Option(
      names = "--node-heap",
      defaultValue = "768m",
      description = "Java heap per node. Default: ${DEFAULT-VALUE}.")
  String heap;

  @Option(
      names = "--set",
      paramLabel = "KEY=VALUE",
      description = "A setting for every node (repeatable).")
  Map<String, String> settings = new LinkedHashMap<>();

  @Option(
      names = "--served-model-name",
      paramLabel = "NAME",
      description =
          "Name the router serves the model under (default: the model directory's name, or the"
              + " preset's).")
  String servedModelName;

  @Option(
      names = "--http-port",
      defaultValue = "0",
      description =
          "Port of the router's OpenAI-compatible HTTP API (0 = any free port). Default: ${DEFAULT-VALUE}.")
  int httpPort;

  @Option(
      names = "--tls",
      description =
          "Mutual TLS between every node and TLS on the router's gRPC and HTTP APIs, with a throw-away CA and node certificate (localhost, 127.0.0.1) generated at start in a temporary directory; clients pass --tls-ca <dir>/ca.crt.")
  boolean tls;

  @Option(
      names = "--api-keys-file",
      paramLabel = "FILE",
      description =
          "Run with API keys on: every node reads its keys from FILE (one a line, re-read when it"
              + " changes) and the nodes share a cluster token generated for this run.")
  Path apiKeysFile;

  @Option(
      names = "--start-timeout",
      defaultValue = "180",
      description = "Seconds to wait for every node. Default: ${DEFAULT-VALUE}.")
  int startTimeout;

  /** A {@code --set} value of a key {@code pdserve local} itself reads, else its default. */
  private <T> T setting(ConfigKey<T> key) {
    String text = settings.get(key.name());
    if (text == null) {
      text = settings.get(key.name().substring(ConfigKey.PREFIX.length()));
    }
    if (text == null) {
      return key.defaultValue().orElseThrow();
    }
    try {
      return key.type().parse(text.trim());
    } catch (RuntimeException e) {
      throw new CommandLine.ParameterException(
          spec.commandLine(), "--set " + key.name() + ": " + e.getMessage());
    }
  }

  @Override
  public Integer call() throws Exception {
    var err = spec.commandLine().getErr();
    var out = spec.commandLine().getOut();
    if (httpPort != 0) {
      settings.put(
          NodeConfigLoader.HTTP_PORT, Integer.toString(httpPort)); // only the router binds it
    }
    if (servedModelName != null) {
      settings.put(NodeConfigLoader.MODEL_SERVED_NAME, servedModelName);
    }
    if (kvDtype != null) {
      settings.put(NodeConfigLoader.KV_DTYPE, kvDtype.configName()); // every node, one dtype
    }
    LocalTls localTls = tls ? LocalTls.generate() : null;
    if (localTls != null) {
      settings.putAll(localTls.settings());
      out.printf(
          "pdserve local: TLS on; throw-away CA and node certificate in %s, deleted when this"
              + " stops (clients: --tls-ca %s)%n",
          localTls.directory(), localTls.files().ca());
    }
    // One hook stops the cluster and then deletes the certificates whenever the JVM exits (a
    // signal during the start too); a start that fails deletes them at once.
    AtomicReference<LocalCluster> started = new AtomicReference<>();
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  LocalCluster c = started.get();
                  if (c != null) {
                    c.close(); // closes localTls too
                  }
                  if (localTls != null) {
                    localTls.close();
                  }
                  stopped.countDown();
                },
                "local-cluster-stop"));
    LocalCluster cluster;
    try {
      cluster = startCluster(localTls);
    } catch (Exception | Error e) {
      if (localTls != null) {
        localTls.close();
      }
      throw e;
    }
    started.set(cluster);
    if (readyFile != null) {
      Path tmp = readyFile.resolveSibling(readyFile.getFileName() + ".tmp");
      Files.writeString(
          tmp,
          cluster.routerAddress() + "\nhttp=" + cluster.routerHttpUrl() + "\n",
          StandardCharsets.UTF_8);
      Files.move(
          tmp, readyFile, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }
    out.printf(
        "router listening on %s (gRPC) and %s (OpenAI-compatible HTTP; every node ACTIVE; processes %s). Ctrl-C stops them all.%n",
        cluster.routerAddress(), cluster.routerHttpUrl(), cluster.pids());
    cluster.nodes().stream()
        .filter(n -> !n.getMetricsUrl().isEmpty())
        .forEach(
            n -> out.printf("metrics of %s (%s): %s%n", n.getId(), n.getRole(), n.getMetricsUrl()));
    String keyHint = apiKeysFile != null ? " (API keys on: export PDSERVE_API_KEY=<a key>)" : "";
    String curlKey = apiKeysFile != null ? " -H \"Authorization: Bearer $PDSERVE_API_KEY\"" : "";
    out.printf(
        "try: bin/pdserve generate --router %s --prompt \"Hello\"%s%n",
        cluster.routerAddress(), keyHint);
    out.printf(
        " or:  curl %s/v1/chat/completions%s -H 'Content-Type: application/json' -d '{\"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'%n",
        cluster.routerHttpUrl(), curlKey);
    out.flush();
    ChildRestarts restarts =
        new ChildRestarts(
            ChildRestarts.Limits.of(
                setting(ConfigKeys.LOCAL_RESTART_LIMIT), setting(ConfigKeys.LOCAL_RESTART_WINDOW)),
            Ticker.systemTicker());
    LocalChild dead = null;
    try {
      dead =
          new LocalSupervisor(
                  cluster,
                  restarts,
                  line -> {
                    synchronized (err) {
                      err.println(line);
                      err.flush();
                    }
                  },
                  Duration.ofSeconds(startTimeout))
              .run();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    if (dead != null) {
      cluster.close();
      return 1;
    }
    stopped.await();
    return 0;
  }

  /** Starts the nodes; {@code localTls} (may be null) is owned by the cluster once it started. */
  private LocalCluster startCluster(LocalTls localTls) throws Exception {
    var err = spec.commandLine().getErr();
    var out = spec.commandLine().getOut();
    quantization.putSettings(settings); // every node, workers and expert shards alike
    if (lowBitDummyWeights) {
      settings.put(NodeConfigLoader.MODEL_LOW_BIT_DUMMY_WEIGHTS, "true");
    }
    if (apiKeysFile != null) {
      if (!Files.isReadable(apiKeysFile)) {
        throw new CommandLine.ParameterException(
            spec.commandLine(), "--api-keys-file: no readable file at " + apiKeysFile);
      }
      settings.put(NodeConfigLoader.AUTH_API_KEYS_FILE, apiKeysFile.toAbsolutePath().toString());
      settings.put(NodeConfigLoader.AUTH_CLUSTER_TOKEN_FILE, ClusterTokens.generate().toString());
    }
    LocalCluster.Spec s =
        new LocalCluster.Spec(
            prefill, decode, experts, preset, modelDir, seed, kvBudget, logLevel, settings, heap);
    out.printf(
        "pdserve local: starting %d prefill, %d decode, %d expert shard(s) and a router (model %s)...%n",
        prefill, decode, experts, modelDir != null ? modelDir : preset);
    out.flush();
    return LocalCluster.start(
        s,
        line -> {
          synchronized (err) {
            err.println(line);
            err.flush();
          }
        },
        Duration.ofSeconds(startTimeout),
        localTls == null ? List.of() : List.of(localTls));
  }
}
