package dev.pdserve.core.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.pdserve.model.config.ModelPresets;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every key of {@link ConfigKeys}, generically: its documented default is what an unset key means,
 * a value its type refuses is reported naming the key, and its {@code PDSERVE_*} variable sets it.
 * A new key is covered by being described; only a free-text key has to be named here.
 */
class ConfigKeysTest {
  /** Keys whose type accepts any text: nothing to refuse. */
  private static final Set<ConfigKey<?>> FREE_TEXT =
      Set.of(
          ConfigKeys.BIND_HOST,
          ConfigKeys.ADVERTISED_HOST,
          ConfigKeys.CLUSTER_NAME,
          ConfigKeys.CLUSTER_K8S_SERVICE,
          ConfigKeys.CLUSTER_K8S_NAMESPACE,
          // paths, checked for readability when the node starts (where its Secrets are mounted)
          ConfigKeys.AUTH_API_KEYS_FILE,
          ConfigKeys.AUTH_CLUSTER_TOKEN_FILE,
          ConfigKeys.ROUTER_IMAGES_ALLOWED_HOSTS);

  /** Keys `pdserve local` reads from its own `--set` settings: not part of a node's config. */
  private static final Set<ConfigKey<?>> LOCAL_ONLY =
      Set.of(ConfigKeys.LOCAL_RESTART_LIMIT, ConfigKeys.LOCAL_RESTART_WINDOW);

  @TempDir Path dir;

  /** What every load in this test starts from (a flag each), unless the key under test is one. */
  private Map<String, String> base(ConfigKey<?> key) {
    Map<String, String> m = new LinkedHashMap<>();
    m.put(ConfigKeys.ROLE.name(), "decode");
    m.put(ConfigKeys.NODE_ID.name(), "node-0");
    if (key == ConfigKeys.EXPERT_SHARD_INDEX) {
      m.put(ConfigKeys.EXPERT_SHARD_COUNT.name(), "2");
    }
    if (key == ConfigKeys.TLS_ENABLED || key == ConfigKeys.ROUTER_TLS_ENABLED) {
      // TLS on needs its files named (their content is read when the node starts)
      String file = existingFile(dir).toString();
      m.put(ConfigKeys.TLS_CERT.name(), file);
      m.put(ConfigKeys.TLS_KEY.name(), file);
      m.put(ConfigKeys.TLS_CA.name(), file);
    }
    if (key == ConfigKeys.AUTH_API_KEYS_FILE) {
      m.put(ConfigKeys.AUTH_CLUSTER_TOKEN_FILE.name(), "token-file"); // API keys need a token
    }
    if (key == ConfigKeys.MODEL_QUANTIZATION_COMPUTE
        || key == ConfigKeys.MODEL_QUANTIZE_EMBEDDINGS) {
      // int8 compute needs quantized weights; fp32 embeddings only differ in a quantized mode
      m.put(ConfigKeys.MODEL_QUANTIZATION.name(), "int4");
    }
    m.remove(key.name());
    return m;
  }

  @Test
  void keysAreDistinctAndSoAreTheirEnvironmentVariables() {
    Set<String> names = new TreeSet<>();
    Set<String> variables = new TreeSet<>();
    for (ConfigKey<?> key : ConfigKeys.ALL) {
      assertTrue(names.add(key.name()), "described twice: " + key);
      assertTrue(
          variables.add(key.environmentVariable()), "two keys share " + key.environmentVariable());
      assertTrue(key.name().matches("pdserve\\.[a-z0-9.-]+"), "key name: " + key);
      assertFalse(key.doc().isBlank(), "no doc line: " + key);
      assertEquals(Optional.of(key), ConfigKeys.find(key.name()));
    }
    assertEquals(ConfigKeys.names(), NodeConfigLoader.KEYS);
    assertEquals(
        "PDSERVE_CLUSTER_MAX_NO_HEARTBEAT_SECONDS",
        ConfigKeys.CLUSTER_MAX_NO_HEARTBEAT_SECONDS.environmentVariable());
  }

  @Test
  void everyDocumentedDefaultIsWhatAnUnsetKeyMeans() {
    for (ConfigKey<?> key : ConfigKeys.ALL) {
      if (key.defaultValue().isEmpty()) {
        continue;
      }
      assertEquals(
          key.defaultValue().get(),
          key.type().parse(key.defaultText()),
          () ->
              key + ": its documented default '" + key.defaultText() + "' parses to another value");
      if (key.defaultText().isEmpty()) {
        continue; // a blank value is "unset"
      }
      Map<String, String> unset = base(key);
      Map<String, String> set = new LinkedHashMap<>(unset);
      set.put(key.name(), key.defaultText());
      assertEquals(
          NodeConfigLoader.fromMap(unset),
          NodeConfigLoader.fromMap(set),
          () -> key + "=" + key.defaultText() + " is not the same as leaving it unset");
    }
  }

  @Test
  void aValueTheTypeRefusesIsReportedNamingTheKeyAndItsOrigin() {
    for (ConfigKey<?> key : ConfigKeys.ALL) {
      if (LOCAL_ONLY.contains(key)) {
        continue;
      }
      Optional<String> bad = refused(key.type(), dir);
      if (bad.isEmpty()) {
        assertTrue(
            FREE_TEXT.contains(key),
            () -> key + " accepts any text; list it in FREE_TEXT or give its type a refusal");
        continue;
      }
      assertFalse(
          FREE_TEXT.contains(key), () -> key + " is listed as free text but refuses values");
      Map<String, String> settings = base(key);
      settings.put(key.name(), bad.get());
      NodeConfigException e =
          assertThrows(
              NodeConfigException.class,
              () -> NodeConfigLoader.fromMap(settings),
              () -> key + "=" + bad.get() + " was accepted");
      assertTrue(
          e.problems().stream()
              .anyMatch(p -> p.startsWith(key.name() + ": ") && p.endsWith("(from flag)")),
          () ->
              key
                  + "="
                  + bad.get()
                  + ": no problem naming the key and its origin in "
                  + e.problems());
    }
  }

  @Test
  void everyKeyIsReadFromItsEnvironmentVariable() {
    for (ConfigKey<?> key : ConfigKeys.ALL) {
      if (LOCAL_ONLY.contains(key)) {
        continue;
      }
      Map<String, String> flags = base(key);
      Optional<NodeConfig> without = loads(flags); // empty: the key is required
      List<String> tried = new ArrayList<>();
      boolean changed = false;
      for (String value : accepted(key.type(), dir)) {
        Map<String, String> env = new HashMap<>();
        env.put(key.environmentVariable(), value);
        NodeConfig with;
        try {
          with = NodeConfigLoader.load(Optional.empty(), env, flags);
        } catch (NodeConfigException e) {
          tried.add(value + " (" + e.problems() + ")");
          continue;
        }
        if (!Optional.of(with).equals(without)) {
          changed = true;
          break;
        }
        tried.add(value + " (no change)");
      }
      assertTrue(changed, key.environmentVariable() + " changed nothing; tried " + tried);
    }
  }

  @Test
  void aFlagBeatsTheEnvironmentForEveryKey() {
    for (ConfigKey<?> key : ConfigKeys.ALL) {
      if (LOCAL_ONLY.contains(key)) {
        continue;
      }
      Optional<String> bad = refused(key.type(), dir);
      if (bad.isEmpty()) {
        continue;
      }
      Map<String, String> flags = base(key);
      flags.put(key.name(), firstLoading(key, flags, dir));
      NodeConfig expected = NodeConfigLoader.fromMap(flags);
      NodeConfig actual =
          NodeConfigLoader.load(
              Optional.empty(), Map.of(key.environmentVariable(), bad.get()), flags);
      assertEquals(expected, actual, () -> key + ": the flag did not win over the environment");
    }
  }

  private static Optional<NodeConfig> loads(Map<String, String> flags) {
    try {
      return Optional.of(NodeConfigLoader.fromMap(flags));
    } catch (NodeConfigException e) {
      return Optional.empty();
    }
  }

  /** The first of {@link #accepted} that loads as a flag over {@code flags}. */
  private static String firstLoading(ConfigKey<?> key, Map<String, String> flags, Path dir) {
    for (String value : accepted(key.type(), dir)) {
      Map<String, String> m = new LinkedHashMap<>(flags);
      m.put(key.name(), value);
      try {
        NodeConfigLoader.fromMap(m);
        return value;
      } catch (NodeConfigException e) {
        // try the next
      }
    }
    return fail(key + ": none of " + accepted(key.type(), dir) + " loads");
  }

  /** A value {@code type} refuses; empty when it accepts any text. */
  private static Optional<String> refused(ValueType<?> type, Path dir) {
    if (type instanceof ValueType.Int t) {
      return Optional.of(Long.toString((long) t.max() + 1));
    } else if (type instanceof ValueType.ByteSize t) {
      return Optional.of(t.min() > 0 ? Long.toString(t.min() - 1) : "4GB");
    } else if (type instanceof ValueType.Text t) {
      if (t.pattern().isEmpty()) {
        return Optional.empty();
      }
      assertFalse(t.pattern().get().matcher("has space").matches(), "pick another refused text");
      return Optional.of("has space");
    } else if (type instanceof ValueType.Preset) {
      return Optional.of("gpt");
    } else if (type instanceof ValueType.Directory) {
      return Optional.of(dir.resolve("missing").toString());
    } else if (type instanceof ValueType.NonNegativeDecimal) {
      return Optional.of("-1");
    } else if (type instanceof ValueType.LongInt) {
      return Optional.of("x");
    } else if (type instanceof ValueType.Bool) {
      return Optional.of("maybe");
    } else if (type instanceof ValueType.Choice) {
      return Optional.of("no-such-choice");
    } else if (type instanceof ValueType.Timeout) {
      return Optional.of("soon");
    } else if (type instanceof ValueType.HostPorts) {
      return Optional.of("127.0.0.1");
    } else if (type instanceof ValueType.Experts) {
      return Optional.of("31-0");
    } else if (type instanceof ValueType.RegularFile) {
      return Optional.of(dir.resolve("missing.pem").toString());
    }
    return fail("no refused value for " + type + ": add one here");
  }

  /** A readable file in {@code dir} (created the first time). */
  private static Path existingFile(Path dir) {
    Path f = dir.resolve("present.pem");
    try {
      if (!Files.exists(f)) {
        Files.writeString(f, "-----BEGIN CERTIFICATE-----\n");
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return f;
  }

  /** Values {@code type} accepts, tried in order (a value may clash with another key's rule). */
  private static List<String> accepted(ValueType<?> type, Path dir) {
    if (type instanceof ValueType.Int t) {
      return List.of(Integer.toString(t.min()), Integer.toString(t.min() + 1));
    } else if (type instanceof ValueType.ByteSize t) {
      return List.of(Long.toString(Math.max(t.min(), 1024)), "2048");
    } else if (type instanceof ValueType.Choice<?> t) {
      return List.copyOf(t.choices().keySet());
    } else if (type instanceof ValueType.Text) {
      return List.of("node-7", "10.1.2.3");
    } else if (type instanceof ValueType.Preset) {
      return ModelPresets.names();
    } else if (type instanceof ValueType.Directory) {
      return List.of(dir.toString());
    } else if (type instanceof ValueType.NonNegativeDecimal) {
      return List.of("0.5");
    } else if (type instanceof ValueType.LongInt) {
      return List.of("7");
    } else if (type instanceof ValueType.Bool) {
      return List.of("true", "false");
    } else if (type instanceof ValueType.Timeout) {
      return List.of("1s");
    } else if (type instanceof ValueType.HostPorts) {
      return List.of("10.0.0.1:5701");
    } else if (type instanceof ValueType.Experts) {
      return List.of("0-7");
    } else if (type instanceof ValueType.RegularFile) {
      return List.of(existingFile(dir).toString());
    }
    return fail("no accepted values for " + type + ": add some here");
  }
}
