package dev.pdserve.core.config;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The raw values of a node's configuration, each with where it came from, read through their {@link
 * ConfigKey}s. A value that does not parse is recorded as a problem naming the key and its origin
 * ({@code pdserve.grpc.port: must be 0..65535, got 70000 (from environment PDSERVE_GRPC_PORT)}) and
 * the key's default is used, so that every problem is found in one pass.
 */
final class ConfigValues {
  private final Map<String, String> values = new LinkedHashMap<>();
  private final Map<String, String> origins = new LinkedHashMap<>();
  private final List<String> problems = new ArrayList<>();

  /** Sets {@code key} from {@code origin}; a blank value unsets it (the layer below applies). */
  void set(ConfigKey<?> key, String value, String origin) {
    if (value == null || value.isBlank()) {
      values.remove(key.name());
      origins.remove(key.name());
    } else {
      values.put(key.name(), value.trim());
      origins.put(key.name(), origin);
    }
  }

  boolean isSet(ConfigKey<?> key) {
    return values.containsKey(key.name());
  }

  /** The text {@code key} is set to, unparsed. */
  Optional<String> text(ConfigKey<?> key) {
    return Optional.ofNullable(values.get(key.name()));
  }

  /**
   * The value of {@code key}: parsed, else its default; empty when it has none, or when the value
   * is refused (a problem is then recorded).
   */
  <T> Optional<T> find(ConfigKey<T> key) {
    String text = values.get(key.name());
    if (text == null) {
      return key.defaultValue();
    }
    try {
      return Optional.of(key.type().parse(text));
    } catch (ValueType.Refused e) {
      e.reasons().forEach(reason -> fail(key, reason));
    } catch (IllegalArgumentException e) {
      fail(key, e.getMessage());
    }
    return key.defaultValue();
  }

  /** The value of a key that has a default: parsed, or the default if unset or refused. */
  <T> T get(ConfigKey<T> key) {
    return find(key).orElseThrow(() -> new IllegalStateException(key.name() + " has no default"));
  }

  /** Records a problem of {@code key}, naming where its value came from if it was set. */
  void fail(ConfigKey<?> key, String message) {
    String origin = origins.get(key.name());
    problems.add(key.name() + ": " + message + (origin != null ? " (from " + origin + ")" : ""));
  }

  /** Records a problem that is no key's value (an unreadable file, an unknown key). */
  void problem(String line) {
    problems.add(line);
  }

  List<String> problems() {
    return List.copyOf(problems);
  }
}
