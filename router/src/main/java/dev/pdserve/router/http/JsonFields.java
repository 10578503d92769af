package dev.pdserve.router.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import java.util.OptionalLong;

/**
 * Typed reads of a JSON request object. An absent field and an explicit {@code null} both read as
 * "not set"; a value of the wrong type is a 400 naming the field ({@code temperature must be a
 * number, got a string}).
 */
final class JsonFields {
  private final JsonNode obj;

  JsonFields(JsonNode obj) {
    this.obj = obj;
  }

  boolean has(String name) {
    JsonNode v = obj.get(name);
    return v != null && !v.isNull();
  }

  JsonNode node(String name) {
    JsonNode v = obj.get(name);
    return v == null || v.isNull() ? null : v;
  }

  OptionalDouble number(String name) {
    JsonNode v = node(name);
    if (v == null) {
      return OptionalDouble.empty();
    }
    if (!v.isNumber()) {
      throw wrongType(name, "a number", v);
    }
    return OptionalDouble.of(v.doubleValue());
  }

  OptionalInt integer(String name) {
    JsonNode v = node(name);
    if (v == null) {
      return OptionalInt.empty();
    }
    return OptionalInt.of(toInt(name, v));
  }

  OptionalLong longInteger(String name) {
    JsonNode v = node(name);
    if (v == null) {
      return OptionalLong.empty();
    }
    if (v.isIntegralNumber() && v.canConvertToLong()) {
      return OptionalLong.of(v.longValue());
    }
    throw wrongType(name, "an integer", v);
  }

  Optional<Boolean> bool(String name) {
    JsonNode v = node(name);
    if (v == null) {
      return Optional.empty();
    }
    if (!v.isBoolean()) {
      throw wrongType(name, "true or false", v);
    }
    return Optional.of(v.booleanValue());
  }

  Optional<String> string(String name) {
    JsonNode v = node(name);
    if (v == null) {
      return Optional.empty();
    }
    if (!v.isTextual()) {
      throw wrongType(name, "a string", v);
    }
    return Optional.of(v.textValue());
  }

  /** An object field, or an empty view when absent. */
  JsonFields object(String name) {
    JsonNode v = node(name);
    if (v == null) {
      return new JsonFields(JsonNodeFactory.instance.objectNode());
    }
    if (!v.isObject()) {
      throw wrongType(name, "an object", v);
    }
    return new JsonFields(v);
  }

  /** A string or a list of strings ({@code stop}). */
  List<String> strings(String name) {
    JsonNode v = node(name);
    List<String> out = new ArrayList<>();
    if (v == null) {
      return out;
    }
    if (v.isTextual()) {
      out.add(v.textValue());
      return out;
    }
    if (!v.isArray()) {
      throw wrongType(name, "a string or a list of strings", v);
    }
    for (int i = 0; i < v.size(); i++) {
      if (!v.get(i).isTextual()) {
        throw wrongType(name + "[" + i + "]", "a string", v.get(i));
      }
      out.add(v.get(i).textValue());
    }
    return out;
  }

  /** A list of integers ({@code stop_token_ids}). */
  List<Integer> integers(String name) {
    JsonNode v = node(name);
    List<Integer> out = new ArrayList<>();
    if (v == null) {
      return out;
    }
    if (!v.isArray()) {
      throw wrongType(name, "a list of integers", v);
    }
    for (int i = 0; i < v.size(); i++) {
      out.add(toInt(name + "[" + i + "]", v.get(i)));
    }
    return out;
  }

  static int toInt(String name, JsonNode v) {
    if (v.isIntegralNumber() && v.canConvertToInt()) {
      return v.intValue();
    }
    if (v.isFloatingPointNumber()
        && v.doubleValue() == Math.rint(v.doubleValue())
        && Math.abs(v.doubleValue()) <= Integer.MAX_VALUE) {
      return (int) v.doubleValue();
    }
    throw wrongType(name, "an integer", v);
  }

  static ApiError wrongType(String name, String expected, JsonNode got) {
    return ApiError.badRequest(
        baseName(name), name + " must be " + expected + ", got " + describe(got));
  }

  private static String baseName(String name) {
    int i = name.indexOf('[');
    int j = name.indexOf('.');
    int cut = i < 0 ? j : (j < 0 ? i : Math.min(i, j));
    return cut < 0 ? name : name.substring(0, cut);
  }

  static String describe(JsonNode v) {
    if (v == null || v.isNull()) {
      return "null";
    }
    if (v.isTextual()) {
      return "a string";
    }
    if (v.isBoolean()) {
      return v.booleanValue() ? "true" : "false";
    }
    if (v.isNumber()) {
      return v.asText();
    }
    return v.isArray() ? "a list" : "an object";
  }
}
