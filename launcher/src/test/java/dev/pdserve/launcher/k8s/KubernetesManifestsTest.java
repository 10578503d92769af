package dev.pdserve.launcher.k8s;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.core.metrics.MetricNames;
import dev.pdserve.core.tls.CertificateAuthority;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every kustomization under {@code deploy/k8s} renders with a real kustomize, every object is valid
 * against the Kubernetes schema (offline), and the checks that tie the manifests to the binaries
 * hold ({@link ManifestChecks}); each check is also shown to catch the mistake it is for.
 */
class KubernetesManifestsTest {
  private static final Path K8S = Kustomize.K8S;
  private static final Map<String, List<JsonNode>> RENDERS = new LinkedHashMap<>();

  @TempDir static Path scratch;

  @BeforeAll
  static void render() throws Exception {
    for (String dir :
        List.of(
            "base",
            "overlays/dev",
            "overlays/gpu",
            "examples/keda",
            "examples/model-convert",
            "examples/prometheus-operator",
            "examples/cert-manager")) {
      RENDERS.put(dir, Kustomize.render(K8S.resolve(dir)));
    }
    // examples/secrets builds Secrets from files an operator provides: here a throw-away PKI, key
    // and token in a copy of it.
    Path secrets = Path.of("target", "k8s-secrets-example").toAbsolutePath();
    Files.createDirectories(secrets);
    Files.copy(
        K8S.resolve("examples/secrets/kustomization.yaml"),
        secrets.resolve("kustomization.yaml"),
        StandardCopyOption.REPLACE_EXISTING);
    CertificateAuthority.LocalFiles pki = CertificateAuthority.writeLocalCluster(secrets);
    Files.move(pki.cert(), secrets.resolve("tls.crt"), StandardCopyOption.REPLACE_EXISTING);
    Files.move(pki.key(), secrets.resolve("tls.key"), StandardCopyOption.REPLACE_EXISTING);
    Files.writeString(secrets.resolve("api-keys"), "test-key-1\n");
    Files.writeString(secrets.resolve("token"), "0123456789abcdef\n");
    RENDERS.put("examples/secrets", Kustomize.render(secrets));
    // The gpu overlay with all of its optional components switched on.
    Path withOptions = Path.of("target", "k8s-gpu-with-options").toAbsolutePath();
    Files.createDirectories(withOptions);
    Files.writeString(
        withOptions.resolve("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
            + "kind: Kustomization\n"
            + "resources:\n"
            + "  - "
            + withOptions.relativize(K8S.resolve("overlays/gpu"))
            + "\n"
            + "components:\n"
            + "  - "
            + withOptions.relativize(K8S.resolve("components/gpu-node-selector"))
            + "\n"
            + "  - "
            + withOptions.relativize(K8S.resolve("components/gpu-tolerations"))
            + "\n"
            + "  - "
            + withOptions.relativize(K8S.resolve("components/network-policy"))
            + "\n"
            + "  - "
            + withOptions.relativize(K8S.resolve("components/api-keys"))
            + "\n");
    RENDERS.put("overlays/gpu + options", Kustomize.render(withOptions));
  }

  @Test
  void everyKustomizationRendersValidObjectsThatAgreeWithTheBinaries() {
    ManifestChecks checks = new ManifestChecks(scratch);
    for (String name : List.of("base", "overlays/dev", "overlays/gpu", "overlays/gpu + options")) {
      checks.check(name, RENDERS.get(name));
    }
    // The examples are applied next to an overlay: check them in that company.
    checks.check("examples/keda", with(RENDERS.get("examples/keda"), RENDERS.get("overlays/dev")));
    checks.check(
        "examples/model-convert",
        with(RENDERS.get("examples/model-convert"), RENDERS.get("overlays/gpu")));
    checks.check(
        "examples/prometheus-operator",
        with(RENDERS.get("examples/prometheus-operator"), RENDERS.get("overlays/dev")));
    checks.check(
        "examples/cert-manager",
        with(RENDERS.get("examples/cert-manager"), RENDERS.get("overlays/gpu")));
    checks.check(
        "examples/secrets",
        with(RENDERS.get("examples/secrets"), RENDERS.get("overlays/gpu + options")));
    assertEquals(
        1,
        Manifests.ofKind(RENDERS.get("examples/prometheus-operator"), "PodMonitor").size(),
        "the example renders its PodMonitor");
    assertEquals(List.of(), checks.problems(), "rendered with " + Kustomize.describe());
  }

  @Test
  void overlaysHaveTheShapeTheirNamesPromise() {
    List<JsonNode> dev = RENDERS.get("overlays/dev");
    List<JsonNode> gpu = RENDERS.get("overlays/gpu");
    for (String kind :
        List.of("Deployment", "StatefulSet", "Service", "ConfigMap", "PodDisruptionBudget")) {
      assertTrue(!Manifests.ofKind(dev, kind).isEmpty(), "dev has a " + kind);
    }
    assertEquals("Deployment", kindOf(dev, "pdserve-router"));
    for (String sts : List.of("pdserve-prefill", "pdserve-decode", "pdserve-experts")) {
      assertEquals("StatefulSet", kindOf(dev, sts), sts + " is a StatefulSet (stable identity)");
    }
    // dev: the built-in model, no volume; gpu: a model directory on the claim, GPUs on workers.
    Map<String, String> devConfig = configMap(dev);
    assertEquals("tiny", devConfig.get("PDSERVE_MODEL_PRESET"));
    assertTrue(!devConfig.containsKey("PDSERVE_MODEL_DIR"));
    assertTrue(Manifests.ofKind(dev, "PersistentVolumeClaim").isEmpty());
    Map<String, String> gpuConfig = configMap(gpu);
    assertEquals("cuda", gpuConfig.get("PDSERVE_ORT_EXECUTION_PROVIDER"));
    assertTrue(gpuConfig.get("PDSERVE_MODEL_DIR").startsWith("/models/"));
    assertEquals(1, Manifests.ofKind(gpu, "PersistentVolumeClaim").size());
    for (Workload w : Workload.all(gpu)) {
      if (w.kind().equals("StatefulSet")) {
        assertEquals(
            1,
            w.container().path("resources").path("limits").path("nvidia.com/gpu").asInt(),
            w.label() + " takes a GPU");
      }
    }
    JsonNode options =
        Manifests.find(RENDERS.get("overlays/gpu + options"), "StatefulSet", "pdserve-decode");
    JsonNode pod = options.path("spec").path("template").path("spec");
    assertEquals("true", pod.path("nodeSelector").path("nvidia.com/gpu.present").asText());
    assertEquals("nvidia.com/gpu", pod.path("tolerations").get(0).path("key").asText());
    assertEquals(
        4,
        Manifests.ofKind(RENDERS.get("overlays/gpu + options"), "NetworkPolicy").size(),
        "the network-policy component");
    JsonNode hazelcast =
        Manifests.find(RENDERS.get("overlays/gpu + options"), "NetworkPolicy", "pdserve-hazelcast");
    JsonNode rule = hazelcast.path("spec").path("ingress").get(0);
    assertEquals("hazelcast", rule.path("ports").get(0).path("port").asText());
    assertEquals(
        "pdserve",
        rule.path("from")
            .get(0)
            .path("podSelector")
            .path("matchLabels")
            .path("app.kubernetes.io/name")
            .asText(),
        "Hazelcast's port only from pdserve pods");
    // The api-keys component: every pod mounts the keys and the cluster token as files.
    for (Workload w : Workload.all(RENDERS.get("overlays/gpu + options"))) {
      String env = w.container().path("env").toString();
      assertTrue(env.contains("/etc/pdserve/auth/api-keys"), w.label() + " reads the API keys");
      assertTrue(env.contains("/etc/pdserve/auth/token"), w.label() + " reads the cluster token");
      assertTrue(
          w.container().path("volumeMounts").toString().contains("/etc/pdserve/auth"),
          w.label() + " mounts the Secrets");
    }
  }

  @Test
  void gpuOverlayTurnsTlsOnAndMountsTheCertificateSecret() {
    List<JsonNode> gpu = RENDERS.get("overlays/gpu");
    String secret = "pdserve-node-tls";
    for (Workload w : Workload.all(gpu)) {
      List<String> problems = new ArrayList<>();
      Map<String, String> env = w.environment(w.podName(0), "10.0.0.7", problems);
      assertEquals(List.of(), problems);
      assertEquals("true", env.get("PDSERVE_TLS_ENABLED"), w.label() + ": mutual TLS on");
      assertEquals("true", env.get("PDSERVE_ROUTER_TLS_ENABLED"), w.label() + ": public TLS on");
      // The three files are in a volume of the Secret, mounted where the settings point.
      JsonNode volume = null;
      for (JsonNode v : w.podSpec().path("volumes")) {
        if (secret.equals(v.path("secret").path("secretName").asText())) {
          volume = v;
        }
      }
      assertTrue(volume != null, w.label() + " has no volume of Secret " + secret);
      String mountPath = null;
      for (JsonNode m : w.container().path("volumeMounts")) {
        if (m.path("name").asText().equals(volume.path("name").asText())) {
          mountPath = m.path("mountPath").asText();
          assertTrue(m.path("readOnly").asBoolean(false), w.label() + " mounts it read-only");
        }
      }
      assertTrue(mountPath != null, w.label() + " does not mount " + volume.path("name"));
      List<String> items = new ArrayList<>();
      volume.path("secret").path("items").forEach(i -> items.add(i.path("path").asText()));
      for (String[] file :
          List.of(
              new String[] {"PDSERVE_TLS_CERT", "tls.crt"},
              new String[] {"PDSERVE_TLS_KEY", "tls.key"},
              new String[] {"PDSERVE_TLS_CA", "ca.crt"})) {
        assertEquals(mountPath + "/" + file[1], env.get(file[0]), w.label() + " " + file[0]);
        assertTrue(items.contains(file[1]), w.label() + " takes " + file[1] + " from " + secret);
      }
      // Probes go to the plaintext health port (a kubelet cannot speak TLS).
      String health = env.get("PDSERVE_GRPC_HEALTH_PORT");
      assertTrue(health != null, w.label() + " has no plaintext health port");
      for (String probe : List.of("startupProbe", "readinessProbe", "livenessProbe")) {
        assertEquals(
            health,
            w.container().path(probe).path("grpc").path("port").asText(),
            w.label() + " " + probe + " asks the health port");
      }
    }
    // The dev overlay stays plaintext (DevOverlayClusterTest runs it as processes).
    for (Workload w : Workload.all(RENDERS.get("overlays/dev"))) {
      assertTrue(
          !w.container().path("env").toString().contains("PDSERVE_TLS_ENABLED"),
          w.label() + " in dev has TLS settings");
    }
    // What writes that Secret: cert-manager's Certificate, or examples/secrets' generator.
    JsonNode cert =
        Manifests.find(RENDERS.get("examples/cert-manager"), "Certificate", "pdserve-node");
    assertEquals(secret, cert.path("spec").path("secretName").asText());
    JsonNode generated = Manifests.find(RENDERS.get("examples/secrets"), "Secret", secret);
    assertTrue(generated != null, "examples/secrets makes no " + secret);
    for (String key : List.of("tls.crt", "tls.key", "ca.crt")) {
      assertTrue(generated.path("data").has(key), secret + " lacks " + key);
    }
    for (String s : List.of("pdserve-api-keys", "pdserve-cluster-token")) {
      assertTrue(
          Manifests.find(RENDERS.get("examples/secrets"), "Secret", s) != null,
          "examples/secrets makes no " + s + " (components/api-keys mounts it)");
    }
  }

  @Test
  void theTlsChecksCatchProbesOnTheTlsPortAndAOneSidedCertificate() {
    List<JsonNode> gpu = RENDERS.get("overlays/gpu");
    assertEquals(List.of(), problems(gpu), "the gpu overlay as rendered is clean");
    expectProblem(
        gpu,
        "StatefulSet",
        "pdserve-decode",
        "which a kubelet probe cannot speak",
        o -> ((ObjectNode) container(o).path("readinessProbe").path("grpc")).put("port", 50051));
    expectProblem(
        gpu,
        "Deployment",
        "pdserve-router",
        "Kubernetes gRPC probes cannot speak TLS",
        o -> {
          ArrayNode env = (ArrayNode) container(o).path("env");
          for (int i = env.size() - 1; i >= 0; i--) {
            if (env.get(i).path("name").asText().equals("PDSERVE_GRPC_HEALTH_PORT")) {
              env.remove(i);
            }
          }
        });
    List<JsonNode> withCertManager =
        with(RENDERS.get("examples/cert-manager"), RENDERS.get("overlays/gpu"));
    expectProblem(
        withCertManager,
        "Certificate",
        "pdserve-node",
        "lack client auth",
        o -> {
          ArrayNode usages = ((ObjectNode) o.path("spec")).putArray("usages");
          usages.add("server auth").add("digital signature");
        });
    expectProblem(
        withCertManager,
        "Certificate",
        "pdserve-node",
        "which the render lacks",
        o -> ((ObjectNode) o.path("spec").path("issuerRef")).put("name", "pdserve-cluster-ca"));
    List<JsonNode> withSecrets =
        with(RENDERS.get("examples/secrets"), RENDERS.get("overlays/gpu + options"));
    expectProblem(
        withSecrets,
        "Secret",
        "pdserve-node-tls",
        "which has only",
        o -> ((ObjectNode) o.path("data")).remove("ca.crt"));
  }

  @Test
  void kedaScalesAWorkerSetOnTheRoutersQueue() {
    JsonNode so = Manifests.ofKind(RENDERS.get("examples/keda"), "ScaledObject").get(0);
    JsonNode target = so.path("spec").path("scaleTargetRef");
    Workload w =
        Workload.all(RENDERS.get("base")).stream()
            .filter(x -> x.name().equals(target.path("name").asText()))
            .findFirst()
            .orElseThrow(() -> new AssertionError("no workload " + target.path("name")));
    assertEquals(w.kind(), target.path("kind").asText());
    assertEquals(w.namespace(), so.path("metadata").path("namespace").asText());
    String query = so.path("spec").path("triggers").get(0).path("metadata").path("query").asText();
    assertTrue(query.contains(MetricNames.NUM_REQUESTS_WAITING + "{"), query);
    // The label the query selects is the router pods' component label, as Prometheus maps it.
    Workload router =
        Workload.all(RENDERS.get("base")).stream()
            .filter(x -> x.name().equals("pdserve-router"))
            .findFirst()
            .orElseThrow();
    assertTrue(
        query.contains(
            "app_kubernetes_io_component=\""
                + router.podLabels().path("app.kubernetes.io/component").asText()
                + "\""),
        query);
  }

  @Test
  void theModelConvertJobWritesTheDirectoryTheGpuPodsLoad() {
    Workload job = Workload.all(RENDERS.get("examples/model-convert")).get(0);
    List<String> args = job.args();
    assertEquals(List.of("model", "convert"), args.subList(0, 2));
    String out = args.get(args.indexOf("--out") + 1);
    assertEquals(configMap(RENDERS.get("overlays/gpu")).get("PDSERVE_MODEL_DIR"), out);
    String claim =
        job.podSpec()
            .path("volumes")
            .get(0)
            .path("persistentVolumeClaim")
            .path("claimName")
            .asText();
    assertEquals(
        claim,
        Manifests.ofKind(RENDERS.get("overlays/gpu"), "PersistentVolumeClaim")
            .get(0)
            .path("metadata")
            .path("name")
            .asText());
  }

  @Test
  void theImageIsOneMultiStageNonRootImageForEveryRole() throws IOException {
    String dockerfile = Files.readString(K8S.resolve("Dockerfile"));
    assertTrue(dockerfile.lines().filter(l -> l.startsWith("FROM ")).count() >= 2, "multi-stage");
    assertTrue(ManifestChecks.dockerfileUser() > 0, "runs as a non-root user");
    assertTrue(
        dockerfile.contains("ENTRYPOINT [\"/opt/pdserve/bin/pdserve\"]"),
        "the CLI is the entry point");
    assertTrue(dockerfile.contains("PDSERVE_SKIP_BUILD=1"), "never builds at run time");
    // The GPU build argument selects the root pom's gpu profile.
    assertTrue(dockerfile.contains("-P${MAVEN_PROFILES}"));
    assertTrue(
        Files.readString(ManifestChecks.REPO.resolve("pom.xml")).contains("<id>gpu</id>"),
        "the gpu profile the Dockerfile names exists");
  }

  @Test
  void theChecksCatchTheMistakesTheyAreFor() {
    List<JsonNode> dev = RENDERS.get("overlays/dev");
    assertEquals(List.of(), problems(dev), "the dev overlay as rendered is clean");
    expectProblem(
        dev,
        "Service",
        "pdserve-router",
        "targets",
        o -> {
          ((ObjectNode) o.path("spec").path("ports").get(0)).put("targetPort", "grpcc");
        });
    expectProblem(
        dev,
        "Service",
        "pdserve-cluster",
        "discovers members through Service",
        o -> {
          ((ObjectNode) o.path("metadata")).put("name", "pdserve-members");
        });
    expectProblem(
        dev,
        "Deployment",
        "pdserve-router",
        "is not defined in the `V1Container` properties",
        o -> {
          ((ObjectNode) container(o)).put("imagePullPolcy", "Always");
        });
    expectProblem(
        dev,
        "StatefulSet",
        "pdserve-decode",
        "is not a setting pdserve reads",
        o -> {
          ((ArrayNode) container(o).path("env"))
              .addObject()
              .put("name", "PDSERVE_KV_BUDGET")
              .put("value", "1g");
        });
    expectProblem(
        dev,
        "StatefulSet",
        "pdserve-prefill",
        "asks for health service",
        o -> {
          ((ObjectNode) container(o).path("readinessProbe").path("grpc"))
              .put("service", "pdserve.prefill");
        });
    expectProblem(
        dev,
        "StatefulSet",
        "pdserve-decode",
        "would kill it mid-drain",
        o -> {
          ((ObjectNode) o.path("spec").path("template").path("spec"))
              .put("terminationGracePeriodSeconds", 10);
        });
    expectProblem(
        dev,
        "ConfigMap",
        null,
        "but the node's settings put it on",
        o -> {
          ((ObjectNode) o.path("data")).put("PDSERVE_GRPC_PORT", "50061");
        });
    expectProblem(
        dev,
        "StatefulSet",
        "pdserve-experts",
        "a value has the wrong type",
        o -> {
          ((ObjectNode) container(o).path("resources").path("limits")).put("memory", "lots");
        });
    expectProblem(
        dev,
        "StatefulSet",
        "pdserve-experts",
        "does not match its pods' labels",
        o -> {
          ((ObjectNode) o.path("spec").path("selector").path("matchLabels"))
              .put("app.kubernetes.io/component", "experts");
        });
    expectProblem(
        dev,
        "Deployment",
        "pdserve-router",
        "do not parse",
        o -> {
          ((ArrayNode) container(o).path("args")).add("--shutdown-timout");
        });
  }

  @Test
  void thePodMonitorCheckCatchesAPortThePodsLack() {
    List<JsonNode> withMonitor =
        with(RENDERS.get("examples/prometheus-operator"), RENDERS.get("overlays/dev"));
    expectProblem(
        withMonitor,
        "PodMonitor",
        "pdserve",
        "'s metrics port",
        o -> ((ObjectNode) o.path("spec").path("podMetricsEndpoints").get(0)).put("port", "http"));
    expectProblem(
        withMonitor,
        "PodMonitor",
        "pdserve",
        "unknown field",
        o ->
            ((ObjectNode) o.path("spec").path("podMetricsEndpoints").get(0))
                .put("intervall", "5s"));
  }

  @Test
  void theNetworkPolicyChecksCatchAClosedClusterAndAMissingPort() {
    List<JsonNode> gpu = RENDERS.get("overlays/gpu + options");
    expectProblem(
        gpu,
        "NetworkPolicy",
        "pdserve-internal",
        "none lets pdserve pods reach each other",
        o ->
            ((ObjectNode) o.path("spec").path("ingress").get(0))
                .putArray("ports")
                .addObject()
                .put("port", "grpc"));
    expectProblem(
        gpu,
        "NetworkPolicy",
        "pdserve-router-clients",
        "which Deployment/pdserve-router lacks",
        o ->
            ((ObjectNode) o.path("spec").path("ingress").get(0).path("ports").get(1))
                .put("port", "https"));
  }

  // ---- helpers ----

  private List<String> problems(List<JsonNode> render) {
    return new ManifestChecks(scratch).check("test", render).problems();
  }

  /** Breaks the object of {@code kind} named {@code name} (any name: null) in a copy. */
  private void expectProblem(
      List<JsonNode> render,
      String kind,
      String name,
      String fragment,
      Consumer<JsonNode> mutation) {
    List<JsonNode> copy = new ArrayList<>();
    render.forEach(o -> copy.add(o.deepCopy()));
    copy.stream()
        .filter(
            o ->
                kind.equals(o.path("kind").asText())
                    && (name == null || name.equals(o.path("metadata").path("name").asText())))
        .forEach(mutation);
    List<String> found = problems(copy);
    assertTrue(
        found.stream().anyMatch(p -> p.contains(fragment)),
        "expected a problem mentioning '" + fragment + "', got " + found);
  }

  private static JsonNode container(JsonNode workload) {
    return workload.path("spec").path("template").path("spec").path("containers").get(0);
  }

  private static String kindOf(List<JsonNode> render, String name) {
    return render.stream()
        .filter(o -> name.equals(o.path("metadata").path("name").asText()))
        .map(o -> o.path("kind").asText())
        .filter(k -> !k.equals("PodDisruptionBudget") && !k.equals("Service"))
        .findFirst()
        .orElse("none");
  }

  static Map<String, String> configMap(List<JsonNode> render) {
    Map<String, String> data = new LinkedHashMap<>();
    Manifests.ofKind(render, "ConfigMap")
        .get(0)
        .path("data")
        .properties()
        .forEach(e -> data.put(e.getKey(), e.getValue().asText()));
    return data;
  }

  private static List<JsonNode> with(List<JsonNode> a, List<JsonNode> b) {
    List<JsonNode> all = new ArrayList<>(a);
    all.addAll(b);
    return all;
  }
}
