package dev.pdserve.core.config;

import java.util.ArrayList;
import java.util.List;

/**
 * The keys of one group interface ({@link NodeKeys}, {@link ClusterKeys}, ...), in the order the
 * group declares them, which is their documentation order.
 */
public final class ConfigKeyGroup {
  private final List<ConfigKey<?>> keys = new ArrayList<>();

  ConfigKeyGroup() {}

  <T> ConfigKey<T> define(ConfigKey<T> key) {
    keys.add(key);
    return key;
  }

  /** The keys of {@code groups}, group after group. */
  static List<ConfigKey<?>> concat(ConfigKeyGroup... groups) {
    List<ConfigKey<?>> all = new ArrayList<>();
    for (ConfigKeyGroup g : groups) {
      all.addAll(g.keys);
    }
    return List.copyOf(all);
  }
}
