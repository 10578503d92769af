package dev.pdserve.core.config;

import java.util.Locale;
import java.util.Optional;

/**
 * One configuration key, described once: its name, how its value is parsed and what it may be, its
 * default, and the line the README's configuration reference shows for it. {@link ConfigKeys} holds
 * every key.
 *
 * @param name the key, {@code pdserve.*}
 * @param type parser and valid values
 * @param defaultValue the value when the key is not set; empty when there is none or it depends on
 *     other keys (then {@code defaultText} says what happens)
 * @param defaultText the default as the reference shows it
 * @param doc what the key does, one line
 * @param <T> the parsed value
 */
public record ConfigKey<T>(
    String name, ValueType<T> type, Optional<T> defaultValue, String defaultText, String doc) {
  /** Every key starts with it; overrides may leave it out. */
  public static final String PREFIX = "pdserve.";

  public ConfigKey {
    if (!name.startsWith(PREFIX)) {
      throw new IllegalArgumentException("a config key starts with " + PREFIX + ", got " + name);
    }
  }

  /** A key whose default is {@code defaultValue}, shown as the type formats it. */
  public static <T> ConfigKey<T> of(String name, ValueType<T> type, T defaultValue, String doc) {
    return new ConfigKey<>(name, type, Optional.of(defaultValue), type.format(defaultValue), doc);
  }

  /** A key without a fixed default; {@code defaultText} says what an unset key means. */
  public static <T> ConfigKey<T> withoutDefault(
      String name, ValueType<T> type, String defaultText, String doc) {
    return new ConfigKey<>(name, type, Optional.empty(), defaultText, doc);
  }

  /** This key read with another type, e.g. a range that depends on another key's value. */
  public ConfigKey<T> withType(ValueType<T> narrower) {
    return new ConfigKey<>(name, narrower, defaultValue, defaultText, doc);
  }

  /** The environment variable that sets this key, e.g. {@code PDSERVE_GRPC_PORT}. */
  public String environmentVariable() {
    return environmentVariable(name);
  }

  /**
   * The environment variable of {@code key}: its name without {@code pdserve.}, upper-cased, with
   * {@code .} and {@code -} turned into {@code _}, behind {@code PDSERVE_}.
   */
  public static String environmentVariable(String key) {
    String bare = key.startsWith(PREFIX) ? key.substring(PREFIX.length()) : key;
    return "PDSERVE_" + bare.toUpperCase(Locale.ROOT).replace('.', '_').replace('-', '_');
  }

  @Override
  public String toString() {
    return name;
  }
}
