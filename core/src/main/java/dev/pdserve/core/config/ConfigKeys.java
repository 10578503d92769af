package dev.pdserve.core.config;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Every configuration key a pdserve node reads, each described once, in documentation order ({@link
 * #ALL}). The keys are declared in groups ({@link NodeKeys}, {@link SecurityKeys}, {@link
 * ClusterKeys}, {@link ModelKeys}, {@link RouterKeys}, {@link ServingKeys}) and reached through
 * this interface ({@code ConfigKeys.GRPC_PORT}). The loader refuses keys not listed here, reads
 * each key's {@code PDSERVE_*} variable, and parses values with the key's {@link ValueType}; the
 * README's configuration table is rendered from this list ({@code ConfigReferenceTest}). Rules
 * between keys (ports that must differ, a heartbeat bound above the interval) live where the
 * settings are read, in {@link NodeConfigLoader}.
 */
public interface ConfigKeys
    extends NodeKeys, SecurityKeys, ClusterKeys, ModelKeys, RouterKeys, ServingKeys {

  /** Every key, in documentation order: the groups in the order this interface extends them. */
  List<ConfigKey<?>> ALL =
      ConfigKeyGroup.concat(
          NodeKeys.GROUP,
          SecurityKeys.GROUP,
          ClusterKeys.GROUP,
          ModelKeys.GROUP,
          RouterKeys.GROUP,
          ServingKeys.GROUP);

  /** The key named {@code name} ({@code pdserve.*}), if there is one. */
  static Optional<ConfigKey<?>> find(String name) {
    return Optional.ofNullable(Registry.BY_NAME.get(name));
  }

  /** The names of {@link #ALL}. */
  static List<String> names() {
    return ALL.stream().map(ConfigKey::name).toList();
  }

  /** The lookup table behind {@link #find}. */
  final class Registry {
    private static final Map<String, ConfigKey<?>> BY_NAME = byName();

    private Registry() {}

    private static Map<String, ConfigKey<?>> byName() {
      Map<String, ConfigKey<?>> m = new LinkedHashMap<>();
      for (ConfigKey<?> k : ALL) {
        if (m.put(k.name(), k) != null) {
          throw new IllegalStateException("config key described twice: " + k.name());
        }
      }
      return m;
    }
  }
}
