package dev.pdserve.launcher.k8s;

import com.fasterxml.jackson.databind.JsonNode;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.config.NodeRole;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** A Deployment, StatefulSet or Job of a render: its pod template and its pdserve container. */
record Workload(JsonNode object, List<JsonNode> render) {
  static List<Workload> all(List<JsonNode> render) {
    List<Workload> out = new ArrayList<>();
    for (JsonNode o : render) {
      if (List.of("Deployment", "StatefulSet", "Job").contains(o.path("kind").asText())) {
        out.add(new Workload(o, render));
      }
    }
    return out;
  }

  /** The node workloads (not Jobs) whose pods {@code selector} matches. */
  static List<Workload> selectedBy(List<JsonNode> render, JsonNode selector) {
    return all(render).stream()
        .filter(w -> w.isNode() && Manifests.matches(selector, w.podLabels()))
        .toList();
  }

  String kind() {
    return object.path("kind").asText();
  }

  String name() {
    return object.path("metadata").path("name").asText();
  }

  String namespace() {
    return object.path("metadata").path("namespace").asText("default");
  }

  String label() {
    return kind() + "/" + name();
  }

  JsonNode podSpec() {
    return object.path("spec").path("template").path("spec");
  }

  JsonNode podLabels() {
    return object.path("spec").path("template").path("metadata").path("labels");
  }

  JsonNode podAnnotations() {
    return object.path("spec").path("template").path("metadata").path("annotations");
  }

  /** The container named pdserve (every pdserve pod has exactly one). */
  JsonNode container() {
    for (JsonNode c : podSpec().path("containers")) {
      if ("pdserve".equals(c.path("name").asText())) {
        return c;
      }
    }
    throw new AssertionError(label() + ": no container named pdserve");
  }

  List<String> args() {
    List<String> args = new ArrayList<>();
    container().path("args").forEach(a -> args.add(a.asText()));
    return args;
  }

  /** True for the long-running nodes (router, workers, expert shards), not one-off Jobs. */
  boolean isNode() {
    return !kind().equals("Job");
  }

  /** The container's named ports. */
  Map<String, Integer> ports() {
    Map<String, Integer> ports = new LinkedHashMap<>();
    container()
        .path("ports")
        .forEach(p -> ports.put(p.path("name").asText(""), p.path("containerPort").asInt()));
    return ports;
  }

  /** The role its node starts in: from the subcommand, or a worker's --role / PDSERVE_ROLE. */
  NodeRole role(Map<String, String> env) {
    List<String> a = args();
    return switch (a.get(0)) {
      case "router" -> NodeRole.ROUTER;
      case "expert" -> NodeRole.EXPERT;
      case "worker" ->
          NodeRole.parse(
              a.contains("--role")
                  ? a.get(a.indexOf("--role") + 1)
                  : env.getOrDefault(
                      NodeConfigLoader.environmentVariable(NodeConfigLoader.ROLE), "?"));
      default -> throw new AssertionError(label() + ": not a node subcommand: " + a.get(0));
    };
  }

  /**
   * The environment the container gets, the way the kubelet builds it: every envFrom ConfigMap's
   * data, then the env entries (which win); downward-API fields are filled as for pod {@code
   * podName} at {@code podIp}.
   */
  Map<String, String> environment(String podName, String podIp, List<String> problems) {
    Map<String, String> env = new LinkedHashMap<>();
    for (JsonNode from : container().path("envFrom")) {
      String cm = from.path("configMapRef").path("name").asText();
      JsonNode map = Manifests.find(render, "ConfigMap", cm);
      if (map == null) {
        problems.add(label() + ": envFrom names ConfigMap " + cm + ", which the render lacks");
        continue;
      }
      map.path("data").properties().forEach(e -> env.put(e.getKey(), e.getValue().asText()));
    }
    for (JsonNode e : container().path("env")) {
      String var = e.path("name").asText();
      JsonNode field = e.path("valueFrom").path("fieldRef").path("fieldPath");
      if (field.isMissingNode()) {
        env.put(var, e.path("value").asText(""));
        continue;
      }
      switch (field.asText()) {
        case "metadata.name" -> env.put(var, podName);
        case "status.podIP" -> env.put(var, podIp);
        case "metadata.namespace" -> env.put(var, namespace());
        default -> problems.add(label() + ": " + var + " reads unexpected field " + field.asText());
      }
    }
    return env;
  }

  /** Pod name of replica {@code i}: StatefulSet pods are name-ordinal; others get a suffix. */
  String podName(int i) {
    return kind().equals("StatefulSet") ? name() + "-" + i : name() + "-6d4cf56db6-x" + i;
  }

  int replicas() {
    return object.path("spec").path("replicas").asInt(1);
  }
}
