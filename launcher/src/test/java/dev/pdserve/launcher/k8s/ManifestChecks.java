package dev.pdserve.launcher.k8s;

import com.fasterxml.jackson.databind.JsonNode;
import com.google.gson.JsonParser;
import dev.pdserve.core.config.JoinMode;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeConfigException;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.launcher.Main;
import dev.pdserve.launcher.NodeProcess;
import io.kubernetes.client.openapi.models.V2HorizontalPodAutoscalerBehavior;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine;

/**
 * What must hold of a rendered set of pdserve objects beyond the Kubernetes schema — the checks
 * that tie the manifests to the binaries: containers start with arguments this build's CLI parses
 * and settings its config loader accepts; every port a Service or probe names is a port the node
 * opens; probes ask the gRPC health port for the service names the nodes report; Hazelcast's
 * discovery names the headless Service that exists and selects the pods; selectors match labels;
 * drain budgets add up. Each check adds a message naming the object to {@link #problems()}.
 */
final class ManifestChecks {
  static final Path REPO = Kustomize.K8S.getParent().getParent();
  private static final Pattern DOCKER_USER = Pattern.compile("(?m)^USER\\s+(\\d+)");
  private static final Pattern DURATION = Pattern.compile("(\\d+)(ms|s|m|h)?");

  private final List<String> problems = new ArrayList<>();
  private final Path scratch;

  /** {@code scratch}: a directory that stands in for mounted model directories. */
  ManifestChecks(Path scratch) {
    this.scratch = scratch;
  }

  List<String> problems() {
    return problems;
  }

  /** Every check on one render; {@code name} prefixes the messages. */
  ManifestChecks check(String name, List<JsonNode> render) {
    int before = problems.size();
    schema(render);
    for (Workload w : Workload.all(render)) {
      workload(w);
    }
    services(render);
    budgets(render);
    monitors(render);
    networkPolicies(render);
    secrets(render);
    certificates(render);
    for (int i = before; i < problems.size(); i++) {
      problems.set(i, name + ": " + problems.get(i));
    }
    return this;
  }

  // ---- schema ----

  void schema(List<JsonNode> render) {
    for (JsonNode o : render) {
      String apiVersion = o.path("apiVersion").asText("");
      if (KubernetesSchema.isBuiltIn(apiVersion)) {
        problems.addAll(KubernetesSchema.validate(o));
      } else if (apiVersion.equals("monitoring.coreos.com/v1")
          && o.path("kind").asText().equals("PodMonitor")) {
        podMonitorSchema(o);
      } else if (apiVersion.equals("keda.sh/v1alpha1")
          && o.path("kind").asText().equals("ScaledObject")) {
        scaledObjectSchema(o);
      } else if (apiVersion.equals("cert-manager.io/v1")
          && Set.of("Issuer", "Certificate").contains(o.path("kind").asText())) {
        certManagerSchema(o, render);
      } else {
        problems.add(
            o.path("kind").asText() + " " + apiVersion + ": no schema to check it against");
      }
    }
  }

  /**
   * KEDA's ScaledObject (a custom resource, so not in the Kubernetes schema): the fields KEDA
   * defines, trigger metadata as strings (KEDA rejects numbers there), and the HPA behavior block
   * checked against the Kubernetes autoscaling/v2 schema.
   */
  private void scaledObjectSchema(JsonNode o) {
    String name = "ScaledObject/" + o.path("metadata").path("name").asText();
    JsonNode spec = o.path("spec");
    onlyFields(
        name + " spec",
        spec,
        Set.of(
            "scaleTargetRef",
            "pollingInterval",
            "cooldownPeriod",
            "initialCooldownPeriod",
            "idleReplicaCount",
            "minReplicaCount",
            "maxReplicaCount",
            "fallback",
            "advanced",
            "triggers"));
    onlyFields(
        name + " scaleTargetRef",
        spec.path("scaleTargetRef"),
        Set.of("apiVersion", "kind", "name", "envSourceContainerName"));
    if (spec.path("scaleTargetRef").path("name").asText("").isEmpty()) {
      problems.add(name + ": scaleTargetRef.name is required");
    }
    for (String n :
        List.of("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount")) {
      if (spec.has(n) && !spec.get(n).isInt()) {
        problems.add(name + ": " + n + " must be an integer");
      }
    }
    if (spec.path("minReplicaCount").asInt(0) > spec.path("maxReplicaCount").asInt(100)) {
      problems.add(name + ": minReplicaCount > maxReplicaCount");
    }
    JsonNode advanced = spec.path("advanced");
    onlyFields(
        name + " advanced",
        advanced,
        Set.of(
            "restoreToOriginalReplicaCount", "horizontalPodAutoscalerConfig", "scalingModifiers"));
    JsonNode behavior = advanced.path("horizontalPodAutoscalerConfig").path("behavior");
    if (!behavior.isMissingNode()) {
      try {
        V2HorizontalPodAutoscalerBehavior.validateJsonElement(
            JsonParser.parseString(behavior.toString()));
      } catch (IOException | RuntimeException e) {
        problems.add(name + ": advanced.horizontalPodAutoscalerConfig.behavior: " + e.getMessage());
      }
    }
    if (!spec.path("triggers").isArray() || spec.path("triggers").isEmpty()) {
      problems.add(name + ": needs at least one trigger");
    }
    for (JsonNode t : spec.path("triggers")) {
      onlyFields(
          name + " trigger",
          t,
          Set.of(
              "type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"));
      t.path("metadata")
          .properties()
          .forEach(
              e -> {
                if (!e.getValue().isTextual()) {
                  problems.add(name + ": trigger metadata " + e.getKey() + " must be a string");
                }
              });
    }
  }

  /** cert-manager's Issuer and Certificate (custom resources): the fields their CRDs define. */
  private void certManagerSchema(JsonNode o, List<JsonNode> render) {
    String kind = o.path("kind").asText();
    String name = kind + "/" + o.path("metadata").path("name").asText();
    JsonNode spec = o.path("spec");
    if (kind.equals("Issuer")) {
      onlyFields(name + " spec", spec, Set.of("selfSigned", "ca", "acme", "vault", "venafi"));
      if (spec.size() != 1) {
        problems.add(name + ": an Issuer has exactly one type (selfSigned, ca, acme, ...)");
      }
      onlyFields(name + " ca", spec.path("ca"), Set.of("secretName", "crlDistributionPoints"));
      return;
    }
    onlyFields(
        name + " spec",
        spec,
        Set.of(
            "secretName",
            "secretTemplate",
            "commonName",
            "dnsNames",
            "ipAddresses",
            "uris",
            "emailAddresses",
            "subject",
            "duration",
            "renewBefore",
            "usages",
            "isCA",
            "privateKey",
            "issuerRef",
            "keystores",
            "revisionHistoryLimit",
            "additionalOutputFormats",
            "literalSubject",
            "nameConstraints",
            "otherNames",
            "encodeUsagesInRequest",
            "signatureAlgorithm"));
    onlyFields(
        name + " privateKey",
        spec.path("privateKey"),
        Set.of("algorithm", "size", "encoding", "rotationPolicy"));
    onlyFields(name + " issuerRef", spec.path("issuerRef"), Set.of("name", "kind", "group"));
    if (spec.path("secretName").asText("").isEmpty()) {
      problems.add(name + ": secretName is required");
    }
    String issuer = spec.path("issuerRef").path("name").asText("");
    if (spec.path("issuerRef").path("kind").asText("Issuer").equals("Issuer")
        && Manifests.find(render, "Issuer", issuer) == null) {
      problems.add(name + ": issuerRef names Issuer " + issuer + ", which the render lacks");
    }
    for (JsonNode u : spec.path("usages")) {
      if (!CERT_MANAGER_USAGES.contains(u.asText())) {
        problems.add(name + ": unknown usage " + u.asText());
      }
    }
  }

  private static final Set<String> CERT_MANAGER_USAGES =
      Set.of(
          "signing",
          "digital signature",
          "content commitment",
          "key encipherment",
          "key agreement",
          "data encipherment",
          "cert sign",
          "crl sign",
          "encipher only",
          "decipher only",
          "any",
          "server auth",
          "client auth",
          "code signing",
          "email protection",
          "s/mime",
          "ipsec end system",
          "ipsec tunnel",
          "ipsec user",
          "timestamping",
          "ocsp signing",
          "microsoft sgc",
          "netscape sgc");

  /** The Prometheus Operator's PodMonitor (a custom resource): the fields its CRD defines. */
  private void podMonitorSchema(JsonNode o) {
    String name = "PodMonitor/" + o.path("metadata").path("name").asText();
    JsonNode spec = o.path("spec");
    onlyFields(
        name + " spec",
        spec,
        Set.of(
            "jobLabel",
            "podTargetLabels",
            "podMetricsEndpoints",
            "selector",
            "namespaceSelector",
            "sampleLimit",
            "targetLimit",
            "labelLimit",
            "labelNameLengthLimit",
            "labelValueLengthLimit",
            "keepDroppedTargets",
            "attachMetadata",
            "scrapeClass",
            "scrapeProtocols"));
    onlyFields(
        name + " selector", spec.path("selector"), Set.of("matchLabels", "matchExpressions"));
    if (!spec.path("podMetricsEndpoints").isArray() || spec.path("podMetricsEndpoints").isEmpty()) {
      problems.add(name + ": needs podMetricsEndpoints");
    }
    for (JsonNode e : spec.path("podMetricsEndpoints")) {
      onlyFields(
          name + " endpoint",
          e,
          Set.of(
              "port",
              "portNumber",
              "path",
              "scheme",
              "params",
              "interval",
              "scrapeTimeout",
              "honorLabels",
              "honorTimestamps",
              "trackTimestampsStaleness",
              "relabelings",
              "metricRelabelings",
              "enableHttp2",
              "filterRunning",
              "followRedirects",
              "proxyUrl",
              "authorization",
              "basicAuth",
              "bearerTokenSecret",
              "oauth2",
              "tlsConfig"));
      for (String list : List.of("relabelings", "metricRelabelings")) {
        for (JsonNode r : e.path(list)) {
          onlyFields(
              name + " " + list,
              r,
              Set.of(
                  "sourceLabels",
                  "separator",
                  "targetLabel",
                  "regex",
                  "modulus",
                  "replacement",
                  "action"));
        }
      }
    }
  }

  private void onlyFields(String where, JsonNode node, Set<String> allowed) {
    node.fieldNames()
        .forEachRemaining(
            f -> {
              if (!allowed.contains(f)) {
                problems.add(where + ": unknown field " + f);
              }
            });
  }

  // ---- workloads ----

  void workload(Workload w) {
    String name = w.label();
    JsonNode c = w.container();
    image(w);
    try {
      Main.commandLine().parseArgs(w.args().toArray(String[]::new));
    } catch (CommandLine.ParameterException e) {
      problems.add(name + ": args " + w.args() + " do not parse: " + e.getMessage());
    }
    JsonNode security = w.podSpec().path("securityContext");
    if (!security.path("runAsNonRoot").asBoolean(false)) {
      problems.add(name + ": pods must set runAsNonRoot");
    }
    int imageUser = dockerfileUser();
    if (security.path("runAsUser").asInt(-1) != imageUser) {
      problems.add(
          name
              + ": runAsUser "
              + security.path("runAsUser")
              + " is not the image's user "
              + imageUser);
    }
    resources(w);
    volumes(w);
    if (!w.isNode()) {
      return;
    }
    List<String> envProblems = new ArrayList<>();
    Map<String, String> env = w.environment(w.podName(0), "10.0.0.7", envProblems);
    problems.addAll(envProblems);
    for (String var : env.keySet()) {
      if (!isSettingReadByBinaries(var)) {
        problems.add(name + ": " + var + " is not a setting pdserve reads");
      }
    }
    NodeRole role;
    try {
      role = w.role(env);
    } catch (IllegalArgumentException e) {
      problems.add(name + ": no starting role: " + e.getMessage());
      return;
    }
    NodeConfig config = config(w, role, env);
    if (config == null) {
      return;
    }
    ports(w, role, config);
    probes(w, role, config);
    drain(w);
    labelsAndSelectors(w);
    discovery(w, config);
    gpu(w, role, env);
    if (w.kind().equals("StatefulSet")) {
      String svc = w.object().path("spec").path("serviceName").asText("");
      JsonNode s = Manifests.find(w.render(), "Service", svc);
      if (s == null || !"None".equals(s.path("spec").path("clusterIP").asText())) {
        problems.add(name + ": serviceName " + svc + " is not a headless Service of the render");
      }
    }
    String shards = env.get(NodeConfigLoader.environmentVariable("pdserve.expert.shard-count"));
    if (role == NodeRole.EXPERT && shards != null && w.replicas() % Integer.parseInt(shards) != 0) {
      problems.add(
          name
              + ": replicas "
              + w.replicas()
              + " is not a multiple of the shard count "
              + shards
              + " (some expert range would have fewer copies than the others)");
    }
  }

  private void image(Workload w) {
    String image = w.container().path("image").asText("");
    int slash = image.lastIndexOf('/');
    int colon = image.lastIndexOf(':');
    if (colon < slash + 1 || !image.substring(slash + 1, colon).equals("pdserve")) {
      problems.add(
          w.label()
              + ": image "
              + image
              + " is not a tagged pdserve image (deploy/k8s/Dockerfile builds pdserve:<tag>)");
    } else if (image.endsWith(":latest")) {
      problems.add(w.label() + ": image " + image + ": pin a version, not latest");
    }
  }

  private void resources(Workload w) {
    JsonNode r = w.container().path("resources");
    for (String k : List.of("cpu", "memory")) {
      if (r.path("requests").path(k).isMissingNode()) {
        problems.add(w.label() + ": no " + k + " request");
      }
    }
    if (r.path("limits").path("memory").isMissingNode()) {
      problems.add(w.label() + ": no memory limit");
    }
    JsonNode gpuReq = r.path("requests").path("nvidia.com/gpu");
    JsonNode gpuLim = r.path("limits").path("nvidia.com/gpu");
    if (!gpuReq.isMissingNode() || !gpuLim.isMissingNode()) {
      if (!gpuReq.asText().equals(gpuLim.asText())) {
        problems.add(
            w.label()
                + ": nvidia.com/gpu requests ("
                + gpuReq
                + ") must equal limits ("
                + gpuLim
                + ")");
      }
    }
  }

  private void volumes(Workload w) {
    Set<String> volumes = new HashSet<>();
    for (JsonNode v : w.podSpec().path("volumes")) {
      volumes.add(v.path("name").asText());
      String claim = v.path("persistentVolumeClaim").path("claimName").asText("");
      if (!claim.isEmpty() && Manifests.find(w.render(), "PersistentVolumeClaim", claim) == null) {
        problems.add(
            w.label()
                + ": volume "
                + v.path("name").asText()
                + " claims "
                + claim
                + ", which the render lacks");
      }
    }
    for (JsonNode m : w.container().path("volumeMounts")) {
      if (!volumes.contains(m.path("name").asText())) {
        problems.add(
            w.label() + ": mounts volume " + m.path("name").asText() + ", which the pod lacks");
      }
    }
  }

  /** The node's config as the pod's environment gives it; null (with a problem) if it fails. */
  private NodeConfig config(Workload w, NodeRole role, Map<String, String> env) {
    Map<String, String> e = new LinkedHashMap<>(env);
    String dirVar = NodeConfigLoader.environmentVariable(NodeConfigLoader.MODEL_DIR);
    String dir = e.get(dirVar);
    if (dir != null && !dir.isBlank()) {
      // The model directory must be on a mounted volume; here a scratch directory stands in.
      boolean mounted = false;
      for (JsonNode m : w.container().path("volumeMounts")) {
        String path = m.path("mountPath").asText();
        if (dir.startsWith(path.endsWith("/") ? path : path + "/")) {
          mounted = true;
        }
      }
      if (!mounted) {
        problems.add(w.label() + ": " + dirVar + "=" + dir + " is on no mounted volume");
      }
      e.put(dirVar, scratch.toString());
    }
    // TLS files must be on a mounted volume; a scratch file stands in (the loader wants it
    // readable).
    for (String key :
        List.of(
            "pdserve.tls.cert",
            "pdserve.tls.key",
            "pdserve.tls.ca",
            "pdserve.router.tls.cert",
            "pdserve.router.tls.key",
            "pdserve.router.tls.client-ca")) {
      String var = NodeConfigLoader.environmentVariable(key);
      String file = e.get(var);
      if (file == null || file.isBlank()) {
        continue;
      }
      boolean mounted = false;
      for (JsonNode m : w.container().path("volumeMounts")) {
        String path = m.path("mountPath").asText();
        if (file.startsWith(path.endsWith("/") ? path : path + "/")) {
          mounted = true;
        }
      }
      if (!mounted) {
        problems.add(w.label() + ": " + var + "=" + file + " is on no mounted volume");
      }
      e.put(var, scratchFile("tls-stand-in.pem").toString());
    }
    try {
      NodeConfig config =
          NodeConfigLoader.load(Optional.empty(), e, Map.of(NodeConfigLoader.ROLE, role.name()));
      if (config.role() != role) {
        problems.add(w.label() + ": loads as " + config.role() + ", expected " + role);
      }
      return config;
    } catch (NodeConfigException ex) {
      problems.add(w.label() + ": its settings do not load: " + ex.getMessage());
      return null;
    }
  }

  private Path scratchFile(String name) {
    Path f = scratch.resolve(name);
    try {
      if (!Files.exists(f)) {
        Files.writeString(f, "");
      }
    } catch (IOException ex) {
      throw new UncheckedIOException(ex);
    }
    return f;
  }

  private void ports(Workload w, NodeRole role, NodeConfig config) {
    Map<String, Integer> ports = w.ports();
    expectPort(w, ports, "grpc", config.network().grpcPort());
    expectPort(w, ports, "metrics", config.network().metricsPort());
    expectPort(w, ports, "hazelcast", config.cluster().port());
    if (role == NodeRole.PREFILL || role == NodeRole.DECODE) {
      expectPort(w, ports, "flight", config.network().flightPort());
    }
    if (role == NodeRole.ROUTER) {
      expectPort(w, ports, "http", config.network().httpPort());
    }
    config.network().grpcHealthPort().ifPresent(p -> expectPort(w, ports, "health", p));
  }

  private void expectPort(Workload w, Map<String, Integer> ports, String name, int served) {
    Integer declared = ports.get(name);
    if (declared == null) {
      problems.add(
          w.label()
              + ": no container port named "
              + name
              + " (the node serves it on "
              + served
              + ")");
    } else if (declared != served) {
      problems.add(
          w.label()
              + ": container port "
              + name
              + "="
              + declared
              + " but the node's settings put it on "
              + served);
    }
  }

  /**
   * Probes ask grpc.health.v1 for the node's service names on the port that answers a kubelet: the
   * gRPC port, or the plaintext health port when there is one. A kubelet's gRPC probe speaks
   * plaintext and presents no certificate, so with TLS on the gRPC port (mutual TLS between nodes,
   * or the router's public TLS) it never gets an answer: the pod would never become ready.
   */
  private void probes(Workload w, NodeRole role, NodeConfig config) {
    JsonNode c = w.container();
    boolean tlsOnGrpcPort =
        config.tls().cluster().enabled()
            || (role == NodeRole.ROUTER && config.tls().publicApi().enabled());
    int probePort = config.network().grpcHealthPort().orElse(config.network().grpcPort());
    if (tlsOnGrpcPort && config.network().grpcHealthPort().isEmpty()) {
      problems.add(
          w.label()
              + ": TLS is on its gRPC port and Kubernetes gRPC probes cannot speak TLS; set"
              + " PDSERVE_GRPC_HEALTH_PORT (a plaintext health-only port) and probe that");
    }
    for (String probe : List.of("startupProbe", "readinessProbe", "livenessProbe")) {
      JsonNode grpc = c.path(probe).path("grpc");
      if (grpc.isMissingNode()) {
        problems.add(w.label() + ": " + probe + " must be a gRPC health probe");
        continue;
      }
      if (grpc.path("port").asInt() != probePort) {
        problems.add(
            w.label()
                + ": "
                + probe
                + " asks port "
                + grpc.path("port")
                + ", the port answering gRPC health probes is "
                + probePort
                + (tlsOnGrpcPort && grpc.path("port").asInt() == config.network().grpcPort()
                    ? " (the gRPC port has TLS on, which a kubelet probe cannot speak)"
                    : ""));
      }
      String service = grpc.path("service").asText("");
      String expected = probe.equals("livenessProbe") ? "" : HealthNames.readiness(role);
      if (!service.equals(expected)) {
        problems.add(
            w.label()
                + ": "
                + probe
                + " asks for health service '"
                + service
                + "', the node reports '"
                + expected
                + "'");
      }
    }
  }

  private void drain(Workload w) {
    List<String> args = w.args();
    int i = args.indexOf("--shutdown-timeout");
    if (i < 0 || i + 1 >= args.size()) {
      problems.add(w.label() + ": no --shutdown-timeout");
      return;
    }
    long timeoutSeconds = seconds(args.get(i + 1));
    long preStop = 0;
    JsonNode cmd = w.container().path("lifecycle").path("preStop").path("exec").path("command");
    if (cmd.size() == 2 && cmd.get(0).asText().equals("sleep")) {
      preStop = Long.parseLong(cmd.get(1).asText());
    } else {
      problems.add(
          w.label() + ": preStop must be [sleep, N] (endpoints drop the pod before it drains)");
    }
    long grace = w.podSpec().path("terminationGracePeriodSeconds").asLong(30);
    long slack = NodeProcess.STOP_SLACK.toSeconds();
    if (grace < preStop + timeoutSeconds + slack) {
      problems.add(
          w.label()
              + ": terminationGracePeriodSeconds "
              + grace
              + " < preStop "
              + preStop
              + " + --shutdown-timeout "
              + timeoutSeconds
              + " + "
              + slack
              + " s to close: the kubelet would kill it mid-drain");
    }
  }

  private void labelsAndSelectors(Workload w) {
    JsonNode labels = w.podLabels();
    if (!"pdserve".equals(labels.path("app.kubernetes.io/name").asText())
        || labels.path("app.kubernetes.io/component").asText("").isEmpty()) {
      problems.add(
          w.label() + ": pods need app.kubernetes.io/name=pdserve and a component (role) label");
    }
    JsonNode selector = w.object().path("spec").path("selector").path("matchLabels");
    if (!Manifests.matches(selector, labels)) {
      problems.add(
          w.label() + ": selector " + selector + " does not match its pods' labels " + labels);
    }
    for (JsonNode t : w.podSpec().path("topologySpreadConstraints")) {
      JsonNode s = t.path("labelSelector").path("matchLabels");
      if (!Manifests.matches(s, labels)) {
        problems.add(
            w.label() + ": topology spread selector " + s + " does not match its own pods");
      }
    }
    JsonNode annotations = w.podAnnotations();
    if (!"true".equals(annotations.path("prometheus.io/scrape").asText())
        || !String.valueOf(w.ports().get("metrics"))
            .equals(annotations.path("prometheus.io/port").asText())
        || !"/metrics".equals(annotations.path("prometheus.io/path").asText())) {
      problems.add(
          w.label()
              + ": prometheus.io/scrape, /port (the metrics port) and /path=/metrics annotations must be set");
    }
  }

  private void discovery(Workload w, NodeConfig config) {
    if (config.cluster().join() != JoinMode.KUBERNETES) {
      problems.add(w.label() + ": cluster join is " + config.cluster().join() + ", not KUBERNETES");
      return;
    }
    String svc = config.cluster().kubernetesService();
    JsonNode s = Manifests.find(w.render(), "Service", svc);
    if (s == null) {
      problems.add(
          w.label()
              + ": Hazelcast discovers members through Service "
              + svc
              + ", which the render lacks");
      return;
    }
    if (!config.cluster().kubernetesNamespace().equals(w.namespace())) {
      problems.add(
          w.label()
              + ": discovery namespace "
              + config.cluster().kubernetesNamespace()
              + " is not the pod's "
              + w.namespace());
    }
    JsonNode spec = s.path("spec");
    if (!"None".equals(spec.path("clusterIP").asText())) {
      problems.add(
          "Service/" + svc + ": Hazelcast's DNS discovery needs it headless (clusterIP: None)");
    }
    if (!spec.path("publishNotReadyAddresses").asBoolean(false)) {
      problems.add(
          "Service/"
              + svc
              + ": must publish not-ready addresses (members meet before they are ready)");
    }
    if (!Manifests.matches(spec.path("selector"), w.podLabels())) {
      problems.add(w.label() + ": the discovery Service " + svc + " does not select its pods");
    }
    boolean hazelcastPort = false;
    for (JsonNode p : spec.path("ports")) {
      Integer target = resolve(w, p.path("targetPort"));
      if (target != null && target == config.cluster().port()) {
        hazelcastPort = true;
      }
    }
    if (!hazelcastPort) {
      problems.add(
          "Service/"
              + svc
              + ": no port reaches the Hazelcast port "
              + config.cluster().port()
              + " of "
              + w.label());
    }
  }

  private void gpu(Workload w, NodeRole role, Map<String, String> env) {
    if (role == NodeRole.ROUTER) {
      return;
    }
    boolean cuda =
        "cuda"
            .equalsIgnoreCase(
                env.getOrDefault(
                    NodeConfigLoader.environmentVariable(NodeConfigLoader.ORT_EXECUTION_PROVIDER),
                    "cpu"));
    boolean gpuRequested =
        !w.container().path("resources").path("limits").path("nvidia.com/gpu").isMissingNode();
    boolean gpuImage = w.container().path("image").asText().endsWith("-gpu");
    if (cuda != gpuRequested || cuda != gpuImage) {
      problems.add(
          w.label()
              + ": execution provider cuda="
              + cuda
              + ", nvidia.com/gpu requested="
              + gpuRequested
              + ", GPU image="
              + gpuImage
              + ": all three must agree");
    }
  }

  // ---- secrets and certificates ----

  /**
   * Every Secret a pod mounts that the render holds (Secrets are usually created apart from the
   * overlays) has the keys the pod's volume takes from it.
   */
  void secrets(List<JsonNode> render) {
    for (Workload w : Workload.all(render)) {
      for (JsonNode v : w.podSpec().path("volumes")) {
        List<JsonNode> sources = new ArrayList<>();
        if (v.has("secret")) {
          sources.add(v.path("secret"));
        }
        v.path("projected").path("sources").forEach(src -> sources.add(src.path("secret")));
        for (JsonNode src : sources) {
          String secret = src.has("secretName") ? src.path("secretName").asText() : null;
          if (secret == null) {
            secret = src.path("name").asText(null);
          }
          if (secret == null) {
            continue;
          }
          JsonNode obj = Manifests.find(render, "Secret", secret);
          if (obj == null) {
            continue;
          }
          for (JsonNode item : src.path("items")) {
            String key = item.path("key").asText();
            if (!obj.path("data").has(key) && !obj.path("stringData").has(key)) {
              problems.add(
                  w.label()
                      + ": volume "
                      + v.path("name").asText()
                      + " takes key "
                      + key
                      + " of Secret/"
                      + secret
                      + ", which has only "
                      + keys(obj));
            }
          }
        }
      }
    }
  }

  private static List<String> keys(JsonNode secret) {
    List<String> k = new ArrayList<>();
    secret.path("data").fieldNames().forEachRemaining(k::add);
    secret.path("stringData").fieldNames().forEachRemaining(k::add);
    return k;
  }

  /**
   * A cert-manager Certificate that writes a Secret pods mount for mutual TLS must allow both
   * server and client authentication (every node is both), and must not be a CA certificate.
   */
  void certificates(List<JsonNode> render) {
    for (JsonNode c : Manifests.ofKind(render, "Certificate")) {
      String name = "Certificate/" + c.path("metadata").path("name").asText();
      JsonNode spec = c.path("spec");
      String secret = spec.path("secretName").asText();
      boolean mounted =
          Workload.all(render).stream()
              .anyMatch(w -> w.podSpec().path("volumes").toString().contains("\"" + secret + "\""));
      boolean nodeCertificate = mounted || secret.equals(NODE_TLS_SECRET);
      if (!nodeCertificate) {
        continue;
      }
      List<String> usages = new ArrayList<>();
      spec.path("usages").forEach(u -> usages.add(u.asText()));
      for (String needed : List.of("server auth", "client auth")) {
        if (!usages.contains(needed)) {
          problems.add(
              name
                  + ": writes "
                  + secret
                  + ", which the nodes present for mutual TLS, but its usages "
                  + usages
                  + " lack "
                  + needed);
        }
      }
      if (spec.path("isCA").asBoolean(false)) {
        problems.add(name + ": the node certificate must not be a CA");
      }
    }
  }

  /** The Secret {@code components/tls} mounts: tls.crt, tls.key and ca.crt. */
  static final String NODE_TLS_SECRET = "pdserve-node-tls";

  // ---- services and budgets ----

  void services(List<JsonNode> render) {
    for (JsonNode s : Manifests.ofKind(render, "Service")) {
      String name = "Service/" + s.path("metadata").path("name").asText();
      List<Workload> selected = Workload.selectedBy(render, s.path("spec").path("selector"));
      if (selected.isEmpty()) {
        problems.add(
            name + ": its selector " + s.path("spec").path("selector") + " matches no pods");
      }
      for (JsonNode p : s.path("spec").path("ports")) {
        for (Workload w : selected) {
          if (resolve(w, p.path("targetPort")) == null) {
            problems.add(
                name
                    + ": port "
                    + p.path("name").asText()
                    + " targets "
                    + p.path("targetPort")
                    + ", which "
                    + w.label()
                    + "'s container does not declare");
          }
        }
      }
    }
  }

  /** A PodMonitor selects pdserve pods and scrapes the port and path their metrics are on. */
  void monitors(List<JsonNode> render) {
    for (JsonNode m : Manifests.ofKind(render, "PodMonitor")) {
      String name = "PodMonitor/" + m.path("metadata").path("name").asText();
      List<Workload> selected =
          Workload.selectedBy(render, m.path("spec").path("selector").path("matchLabels"));
      if (selected.isEmpty()) {
        problems.add(name + ": selects no pdserve pods");
      }
      for (JsonNode e : m.path("spec").path("podMetricsEndpoints")) {
        for (Workload w : selected) {
          Integer port = w.ports().get(e.path("port").asText());
          if (port == null || !port.equals(w.ports().get("metrics"))) {
            problems.add(
                name + ": port " + e.path("port") + " is not " + w.label() + "'s metrics port");
          }
        }
        if (!"/metrics".equals(e.path("path").asText("/metrics"))) {
          problems.add(name + ": pdserve serves its metrics at /metrics, not " + e.path("path"));
        }
      }
    }
  }

  /**
   * A NetworkPolicy selects pdserve pods, and every port it opens is a port of each of them; the
   * policies together let pdserve pods reach each other on every port (Hazelcast, gRPC, Flight).
   */
  void networkPolicies(List<JsonNode> render) {
    List<JsonNode> policies = Manifests.ofKind(render, "NetworkPolicy");
    boolean internal = false;
    for (JsonNode np : policies) {
      String name = "NetworkPolicy/" + np.path("metadata").path("name").asText();
      List<Workload> selected =
          Workload.selectedBy(render, np.path("spec").path("podSelector").path("matchLabels"));
      if (selected.isEmpty()) {
        problems.add(name + ": selects no pdserve pods");
      }
      for (JsonNode rule : np.path("spec").path("ingress")) {
        if (rule.path("ports").isMissingNode()) {
          for (JsonNode from : rule.path("from")) {
            JsonNode peers = from.path("podSelector").path("matchLabels");
            internal |=
                from.path("namespaceSelector").isMissingNode()
                    && "pdserve".equals(peers.path("app.kubernetes.io/name").asText())
                    && peers.size() == 1;
          }
        }
        for (JsonNode port : rule.path("ports")) {
          for (Workload w : selected) {
            if (resolve(w, port.path("port")) == null) {
              problems.add(
                  name + ": opens port " + port.path("port") + ", which " + w.label() + " lacks");
            }
          }
        }
      }
    }
    if (!policies.isEmpty() && !internal) {
      problems.add("NetworkPolicies: none lets pdserve pods reach each other on every port");
    }
  }

  void budgets(List<JsonNode> render) {
    for (JsonNode b : Manifests.ofKind(render, "PodDisruptionBudget")) {
      String name = "PodDisruptionBudget/" + b.path("metadata").path("name").asText();
      List<Workload> selected =
          Workload.selectedBy(render, b.path("spec").path("selector").path("matchLabels"));
      if (selected.size() != 1) {
        problems.add(
            name + ": selects " + selected.size() + " workloads; it should guard exactly one");
      } else if (b.path("spec").has("minAvailable")
          && b.path("spec").path("minAvailable").asInt() >= selected.get(0).replicas()) {
        problems.add(
            name
                + ": minAvailable "
                + b.path("spec").path("minAvailable")
                + " with "
                + selected.get(0).replicas()
                + " replicas would block every voluntary eviction (node drains)");
      }
    }
    for (Workload w : Workload.all(render).stream().filter(Workload::isNode).toList()) {
      boolean guarded =
          Manifests.ofKind(render, "PodDisruptionBudget").stream()
              .anyMatch(
                  b ->
                      Manifests.matches(
                          b.path("spec").path("selector").path("matchLabels"), w.podLabels()));
      if (!guarded) {
        problems.add(w.label() + ": no PodDisruptionBudget");
      }
    }
  }

  /** The container port a Service/probe port refers to (by name or number), or null. */
  private static Integer resolve(Workload w, JsonNode port) {
    if (port.isInt()) {
      return w.ports().containsValue(port.asInt()) ? port.asInt() : null;
    }
    return w.ports().get(port.asText());
  }

  // ---- what the binaries read ----

  /**
   * A PDSERVE_* name the binaries read: a config key's variable, or a process-level one that the
   * launcher script or the logging configuration reads (checked in those files, not listed here).
   */
  static boolean isSettingReadByBinaries(String var) {
    for (String key : NodeConfigLoader.KEYS) {
      if (NodeConfigLoader.environmentVariable(key).equals(var)) {
        return true;
      }
    }
    for (Path reader :
        List.of(
            REPO.resolve("bin/pdserve"), REPO.resolve("launcher/src/main/resources/log4j2.xml"))) {
      String text = read(reader);
      if (text.contains("${" + var + ":")
          || text.contains("${" + var + "}")
          || text.contains("env:" + var + ":")) {
        return true;
      }
    }
    return false;
  }

  static int dockerfileUser() {
    Matcher m = DOCKER_USER.matcher(read(Kustomize.K8S.resolve("Dockerfile")));
    if (!m.find()) {
      throw new AssertionError("deploy/k8s/Dockerfile sets no numeric USER");
    }
    return Integer.parseInt(m.group(1));
  }

  /** {@code 30s}, {@code 2m}, {@code 500ms} or plain seconds, in whole seconds (rounded up). */
  static long seconds(String text) {
    Matcher m = DURATION.matcher(text.trim());
    if (!m.matches()) {
      throw new IllegalArgumentException("not a duration: " + text);
    }
    long n = Long.parseLong(m.group(1));
    String unit = m.group(2) == null ? "s" : m.group(2);
    return switch (unit) {
      case "ms" -> (n + 999) / 1000;
      case "m" -> n * 60;
      case "h" -> n * 3600;
      default -> n;
    };
  }

  static String read(Path p) {
    try {
      return Files.readString(p);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
