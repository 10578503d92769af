package dev.pdserve.launcher.k8s;

import com.fasterxml.jackson.databind.JsonNode;
import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import io.kubernetes.client.openapi.JSON;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;

/**
 * Validates an object against the Kubernetes API's schema, offline, with the official Java client's
 * models (io.kubernetes:client-java-api, generated from the API's OpenAPI spec): every field must
 * be one the API defines (a typo is an error, not silently dropped), required fields must be there,
 * and values must have the field's type (ints, quantities such as {@code 16Gi}, int-or-string
 * ports) — the typed read is compared back against the input, so nothing is lost.
 */
final class KubernetesSchema {
  private static final String MODELS = "io.kubernetes.client.openapi.models.";
  private static final JSON JSON_CODEC = new JSON();

  private KubernetesSchema() {}

  /** True for API groups the Kubernetes schema covers (core and the built-in groups). */
  static boolean isBuiltIn(String apiVersion) {
    if (!apiVersion.contains("/")) {
      return true;
    }
    String group = apiVersion.substring(0, apiVersion.indexOf('/'));
    return !group.contains(".") || group.endsWith(".k8s.io");
  }

  /**
   * A Secret's {@code data} (base64 bytes) checked here and validated as {@code stringData}: the
   * client's byte[] adapter needs okio (and Kotlin), which this offline check leaves out.
   */
  private static JsonNode withoutSecretBytes(JsonNode object, String name, List<String> problems) {
    if (!object.path("kind").asText().equals("Secret") || !object.has("data")) {
      return object;
    }
    com.fasterxml.jackson.databind.node.ObjectNode copy =
        (com.fasterxml.jackson.databind.node.ObjectNode) object.deepCopy();
    com.fasterxml.jackson.databind.node.ObjectNode strings =
        copy.has("stringData")
            ? (com.fasterxml.jackson.databind.node.ObjectNode) copy.get("stringData")
            : copy.putObject("stringData");
    object
        .path("data")
        .properties()
        .forEach(
            e -> {
              try {
                java.util.Base64.getDecoder().decode(e.getValue().asText().replaceAll("\\s", ""));
              } catch (IllegalArgumentException ex) {
                problems.add(name + ": data." + e.getKey() + " is not base64");
              }
              strings.put(e.getKey(), "");
            });
    copy.remove("data");
    return copy;
  }

  /** The problems found in {@code object}; empty when it is valid. */
  static List<String> validate(JsonNode object) {
    List<String> problems = new ArrayList<>();
    String apiVersion = object.path("apiVersion").asText("");
    String kind = object.path("kind").asText("");
    String name = kind + "/" + object.path("metadata").path("name").asText("?");
    Class<?> model;
    try {
      model = Class.forName(MODELS + modelName(apiVersion, kind));
    } catch (ClassNotFoundException e) {
      problems.add(name + ": " + apiVersion + " " + kind + " is not a Kubernetes API type");
      return problems;
    }
    JsonElement json =
        JsonParser.parseString(withoutSecretBytes(object, name, problems).toString());
    try {
      Method validate = model.getMethod("validateJsonElement", JsonElement.class);
      validate.invoke(null, json);
    } catch (InvocationTargetException e) {
      problems.add(name + ": " + e.getCause().getMessage());
      return problems;
    } catch (ReflectiveOperationException e) {
      throw new IllegalStateException(e);
    }
    try {
      Object typed = JSON_CODEC.getGson().fromJson(json, model);
      JsonElement back = JsonParser.parseString(JSON_CODEC.serialize(typed));
      String diff = firstDifference(json, back, "");
      if (diff != null) {
        problems.add(
            name + ": " + diff + " does not read back as written (a value of the wrong type?)");
      }
    } catch (RuntimeException e) {
      problems.add(name + ": a value has the wrong type: " + e.getMessage());
    }
    return problems;
  }

  /** The path of the first value that differs between {@code a} and {@code b}, or null. */
  private static String firstDifference(JsonElement a, JsonElement b, String path) {
    if (a.isJsonObject() && b.isJsonObject()) {
      Set<String> keys = new TreeSet<>(a.getAsJsonObject().keySet());
      keys.addAll(b.getAsJsonObject().keySet());
      for (String k : keys) {
        JsonElement x = a.getAsJsonObject().get(k);
        JsonElement y = b.getAsJsonObject().get(k);
        if (isEmpty(x) && isEmpty(y)) {
          continue; // the models start maps and lists empty: absent and empty are the same
        }
        if (x == null || y == null) {
          return path + "." + k + " (" + x + " vs " + y + ")";
        }
        String d = firstDifference(x, y, path + "." + k);
        if (d != null) {
          return d;
        }
      }
      return null;
    }
    if (a.isJsonArray()
        && b.isJsonArray()
        && a.getAsJsonArray().size() == b.getAsJsonArray().size()) {
      for (int i = 0; i < a.getAsJsonArray().size(); i++) {
        String d =
            firstDifference(
                a.getAsJsonArray().get(i), b.getAsJsonArray().get(i), path + "[" + i + "]");
        if (d != null) {
          return d;
        }
      }
      return null;
    }
    if (path.contains(".resources.")
        && a.isJsonPrimitive()
        && a.getAsJsonPrimitive().isNumber()
        && b.isJsonPrimitive()
        && b.getAsString().equals(a.getAsString())) {
      return null; // a quantity may be written as a number (1) or a string ("1")
    }
    return a.equals(b) ? null : path + " (" + a + " vs " + b + ")";
  }

  private static boolean isEmpty(JsonElement e) {
    return e == null
        || e.isJsonNull()
        || (e.isJsonObject() && e.getAsJsonObject().size() == 0)
        || (e.isJsonArray() && e.getAsJsonArray().isEmpty());
  }

  /** {@code apps/v1} + {@code StatefulSet} is {@code V1StatefulSet}; {@code v1} + … {@code V1…}. */
  static String modelName(String apiVersion, String kind) {
    String version = apiVersion.substring(apiVersion.indexOf('/') + 1);
    return version.substring(0, 1).toUpperCase(Locale.ROOT) + version.substring(1) + kind;
  }
}
