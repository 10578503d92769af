package dev.pdserve.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.config.NodeRole;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/**
 * The Kubernetes manifests in {@code deploy/k8s} start nodes the way this build's CLI and config
 * loader accept: every container's arguments parse, every {@code PDSERVE_*} variable names a real
 * setting, the shared properties file loads into a valid config for each role, and the probes,
 * ports and config map agree with what the node actually serves. (Rendering with {@code kubectl
 * kustomize} is checked by hand, see deploy/k8s/README.md: CI machines may not have kubectl.)
 */
class KubernetesManifestsTest {
  private static final Path K8S = Path.of("..", "deploy", "k8s");
  private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());

  @Test
  void everyContainerStartsAValidlyConfiguredNode() throws IOException {
    List<JsonNode> deployments = new ArrayList<>();
    for (JsonNode doc : documents()) {
      if ("Deployment".equals(doc.path("kind").asText())) {
        deployments.add(doc);
      }
    }
    Set<String> roles = new java.util.HashSet<>();
    for (JsonNode d : deployments) {
      String name = d.path("metadata").path("name").asText();
      JsonNode pod = d.path("spec").path("template").path("spec");
      JsonNode c = pod.path("containers").get(0);
      List<String> args = new ArrayList<>();
      c.path("args").forEach(a -> args.add(a.asText()));

      // The arguments parse with the real command line.
      CommandLine cli = new CommandLine(new PdserveCommand());
      try {
        cli.parseArgs(args.toArray(String[]::new));
      } catch (CommandLine.ParameterException e) {
        fail(name + ": args " + args + " do not parse: " + e.getMessage());
      }
      NodeRole role = roleOf(name, args);
      roles.add(role.name());

      // Every PDSERVE_* variable is a known setting; downward-API values get plausible stand-ins.
      Map<String, String> env = new HashMap<>();
      Set<String> known = new java.util.HashSet<>();
      NodeConfigLoader.KEYS.forEach(k -> known.add(NodeConfigLoader.environmentVariable(k)));
      for (JsonNode e : c.path("env")) {
        String var = e.path("name").asText();
        assertTrue(known.contains(var), name + ": " + var + " is not a pdserve setting");
        String field = e.path("valueFrom").path("fieldRef").path("fieldPath").asText("");
        env.put(
            var,
            switch (field) {
              case "" -> e.path("value").asText();
              case "status.podIP" -> "10.1.2.3";
              case "metadata.name" -> "pdserve-" + role.name().toLowerCase() + "-7f9c-abcde";
              case "metadata.namespace" -> "pdserve";
              default -> throw new AssertionError(name + ": unexpected fieldRef " + field);
            });
      }
      // The config map is mounted where --config points, and the properties load for this role.
      String configArg = args.get(args.indexOf("--config") + 1);
      String mount = null;
      for (JsonNode m : c.path("volumeMounts")) {
        if ("config".equals(m.path("name").asText())) {
          mount = m.path("mountPath").asText();
        }
      }
      assertEquals(
          mount + "/pdserve.properties",
          configArg,
          name + ": --config must point into the config map mount");
      assertEquals(
          "pdserve-config", pod.path("volumes").get(0).path("configMap").path("name").asText());
      NodeConfig config =
          NodeConfigLoader.load(
              Optional.of(K8S.resolve("base/pdserve.properties")),
              env,
              Map.of(NodeConfigLoader.ROLE, role.name()));
      assertEquals(role, config.role());
      assertEquals("10.1.2.3", config.network().advertisedHost());

      // Ports and probes agree with what the node serves.
      Map<String, Integer> ports = new HashMap<>();
      c.path("ports")
          .forEach(p -> ports.put(p.path("name").asText(), p.path("containerPort").asInt()));
      assertEquals(config.network().grpcPort(), ports.get("grpc"), name + ": grpc port");
      assertEquals(config.network().flightPort(), ports.get("flight"), name + ": flight port");
      assertEquals(config.network().metricsPort(), ports.get("metrics"), name + ": metrics port");
      assertEquals(config.cluster().port(), ports.get("hazelcast"), name + ": hazelcast port");
      if (role == NodeRole.ROUTER) {
        assertEquals(
            config.network().httpPort(),
            ports.get("http"),
            name + ": the OpenAI-compatible HTTP port");
      }
      JsonNode readiness = c.path("readinessProbe").path("grpc");
      assertEquals(
          config.network().grpcPort(), readiness.path("port").asInt(), name + ": readiness port");
      assertEquals(
          role.healthServiceName(),
          readiness.path("service").asText(),
          name + ": readiness must ask for the role's health service");
      assertEquals(
          role.healthServiceName(),
          c.path("startupProbe").path("grpc").path("service").asText(),
          name + ": startup probe");
    }
    assertEquals(
        Set.of("ROUTER", "PREFILL", "DECODE", "EXPERT"), roles, "base + overlay cover every role");
  }

  @Test
  void kustomizationsListEveryManifestAndTheConfigMap() throws IOException {
    for (Path dir : List.of(K8S.resolve("base"), K8S.resolve("overlays/expert-shards"))) {
      JsonNode k = YAML.readTree(dir.resolve("kustomization.yaml").toFile());
      for (JsonNode r : k.path("resources")) {
        assertTrue(
            Files.exists(dir.resolve(r.asText())),
            dir + ": resource " + r.asText() + " is missing");
      }
      for (JsonNode p : k.path("patches")) {
        assertTrue(
            Files.exists(dir.resolve(p.path("path").asText())),
            dir + ": patch " + p + " is missing");
      }
    }
    JsonNode base = YAML.readTree(K8S.resolve("base/kustomization.yaml").toFile());
    assertEquals("pdserve-config", base.path("configMapGenerator").get(0).path("name").asText());
    // The headless Service that Hazelcast's DNS discovery asks for exists and is headless.
    NodeConfig c =
        NodeConfigLoader.load(
            Optional.of(K8S.resolve("base/pdserve.properties")),
            Map.of("PDSERVE_ADVERTISED_HOST", "10.1.2.3"),
            Map.of(NodeConfigLoader.ROLE, "DECODE"));
    JsonNode service =
        documents().stream()
            .filter(
                d ->
                    "Service".equals(d.path("kind").asText())
                        && c.cluster()
                            .kubernetesService()
                            .equals(d.path("metadata").path("name").asText()))
            .findFirst()
            .orElseThrow(
                () -> new AssertionError("no Service named " + c.cluster().kubernetesService()));
    assertEquals("None", service.path("spec").path("clusterIP").asText());
    assertTrue(
        service.path("spec").path("publishNotReadyAddresses").asBoolean(),
        "members must find each other before they are ready");
    assertFalse(service.path("spec").path("ports").isEmpty());
  }

  private static NodeRole roleOf(String name, List<String> args) {
    return switch (args.get(0)) {
      case "router" -> NodeRole.ROUTER;
      case "expert" -> NodeRole.EXPERT;
      case "worker" -> NodeRole.parse(args.get(args.indexOf("--role") + 1));
      default -> throw new AssertionError(name + ": unexpected subcommand " + args.get(0));
    };
  }

  private static List<JsonNode> documents() throws IOException {
    List<JsonNode> docs = new ArrayList<>();
    try (Stream<Path> files = Files.walk(K8S)) {
      for (Path f : files.filter(p -> p.toString().endsWith(".yaml")).sorted().toList()) {
        String n = f.getFileName().toString();
        if (n.equals("kustomization.yaml") || n.equals("remote-experts.yaml")) {
          continue;
        }
        try (MappingIterator<JsonNode> it = YAML.readerFor(JsonNode.class).readValues(f.toFile())) {
          while (it.hasNext()) {
            JsonNode d = it.next();
            if (d != null && !d.isEmpty()) {
              docs.add(d);
            }
          }
        }
      }
    }
    return docs;
  }
}
