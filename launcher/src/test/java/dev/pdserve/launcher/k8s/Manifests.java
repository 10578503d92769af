package dev.pdserve.launcher.k8s;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.List;
import java.util.Map;

/** Lookups over a rendered list of objects. */
final class Manifests {
  private Manifests() {}

  static JsonNode find(List<JsonNode> render, String kind, String name) {
    for (JsonNode o : render) {
      if (kind.equals(o.path("kind").asText())
          && name.equals(o.path("metadata").path("name").asText())) {
        return o;
      }
    }
    return null;
  }

  static List<JsonNode> ofKind(List<JsonNode> render, String kind) {
    return render.stream().filter(o -> kind.equals(o.path("kind").asText())).toList();
  }

  /** True when every key/value of {@code selector} is among {@code labels}. */
  static boolean matches(JsonNode selector, JsonNode labels) {
    if (selector == null || selector.isMissingNode() || selector.isEmpty()) {
      return false;
    }
    for (Map.Entry<String, JsonNode> e : selector.properties()) {
      if (!e.getValue().asText().equals(labels.path(e.getKey()).asText(null))) {
        return false;
      }
    }
    return true;
  }
}
