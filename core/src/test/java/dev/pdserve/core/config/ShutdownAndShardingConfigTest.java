package dev.pdserve.core.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

/**
 * {@code pdserve.shutdown.timeout-seconds} and the expert shard keys {@code
 * pdserve.expert.shard-count} / {@code -index}: parsing, defaults, and errors that name the key.
 */
class ShutdownAndShardingConfigTest {

  private static void assertProblem(Map<String, String> settings, String key, String mentions) {
    NodeConfigException e =
        assertThrows(NodeConfigException.class, () -> NodeConfigLoader.fromMap(settings));
    assertTrue(
        e.problems().stream().anyMatch(p -> p.startsWith(key) && p.contains(mentions)),
        () ->
            "expected a problem of " + key + " mentioning '" + mentions + "', got " + e.problems());
  }

  @Test
  void shutdownTimeoutDefaultsTo30SecondsAndReadsDurationsAndTheEnvironment() {
    assertEquals(
        Duration.ofSeconds(30),
        NodeConfigLoader.fromMap(Map.of("role", "router")).shutdown().timeout());
    assertEquals(
        Duration.ofMillis(500),
        NodeConfigLoader.fromMap(Map.of("role", "router", "shutdown.timeout-seconds", "500ms"))
            .shutdown()
            .timeout());
    NodeConfig fromEnv =
        NodeConfigLoader.load(
            Optional.empty(),
            Map.of("PDSERVE_ROLE", "decode", "PDSERVE_SHUTDOWN_TIMEOUT_SECONDS", "45"),
            Map.of());
    assertEquals(Duration.ofSeconds(45), fromEnv.shutdown().timeout());
    assertEquals(
        "PDSERVE_SHUTDOWN_TIMEOUT_SECONDS",
        NodeConfigLoader.environmentVariable(NodeConfigLoader.SHUTDOWN_TIMEOUT_SECONDS));
  }

  @Test
  void shutdownTimeoutTextForms() {
    assertEquals(Duration.ofSeconds(30), ShutdownSettings.parseTimeout("30s"));
    assertEquals(Duration.ofSeconds(30), ShutdownSettings.parseTimeout("30"));
    assertEquals(Duration.ofMinutes(2), ShutdownSettings.parseTimeout("2m"));
    assertEquals(Duration.ofMillis(500), ShutdownSettings.parseTimeout("500ms"));
    assertEquals(Duration.ofMillis(1500), ShutdownSettings.parseTimeout("1.5"));
    assertEquals(Duration.ofHours(1), ShutdownSettings.parseTimeout("1h"));
    assertEquals(Duration.ZERO, ShutdownSettings.parseTimeout("0"));
  }

  @Test
  void badShutdownTimeoutsNameTheKey() {
    String key = NodeConfigLoader.SHUTDOWN_TIMEOUT_SECONDS;
    assertProblem(Map.of("role", "router", "shutdown.timeout-seconds", "soon"), key, "30s");
    assertProblem(Map.of("role", "router", "shutdown.timeout-seconds", "-1"), key, "'-1'");
    assertProblem(Map.of("role", "router", "shutdown.timeout-seconds", "3601"), key, "0..3600");
    assertProblem(Map.of("role", "router", "shutdown.timeout-seconds", "2h"), key, "0..3600");
  }

  @Test
  void splitIsContiguousCoversEveryExpertOnceAndIsBalanced() {
    assertEquals(new ExpertRange(0, 31), ExpertSharding.split(64, 2, 0));
    assertEquals(new ExpertRange(32, 63), ExpertSharding.split(64, 2, 1));
    assertEquals(new ExpertRange(0, 63), ExpertSharding.split(64, 1, 0));
    assertEquals(new ExpertRange(0, 20), ExpertSharding.split(64, 3, 0));
    assertEquals(new ExpertRange(21, 41), ExpertSharding.split(64, 3, 1));
    assertEquals(new ExpertRange(42, 63), ExpertSharding.split(64, 3, 2));
    for (int experts : new int[] {1, 7, 64, 160}) {
      for (int parts = 1; parts <= experts; parts++) {
        List<ExpertRange> all = new ArrayList<>();
        for (int i = 0; i < parts; i++) {
          all.add(ExpertSharding.split(experts, parts, i));
        }
        assertEquals(0, all.get(0).first(), experts + "/" + parts);
        assertEquals(experts - 1, all.get(parts - 1).last(), experts + "/" + parts);
        int min = Integer.MAX_VALUE;
        int max = 0;
        for (int i = 0; i < parts; i++) {
          if (i > 0) {
            assertEquals(all.get(i - 1).last() + 1, all.get(i).first(), "contiguous " + all);
          }
          min = Math.min(min, all.get(i).size());
          max = Math.max(max, all.get(i).size());
        }
        assertTrue(max - min <= 1, "balanced: " + all);
      }
    }
  }

  @Test
  void moreShardsThanExpertsIsAClearError() {
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> ExpertSharding.split(64, 65, 0));
    assertTrue(
        e.getMessage().contains(NodeConfigLoader.EXPERT_SHARD_COUNT)
            && e.getMessage().contains("65")
            && e.getMessage().contains("64"),
        e.getMessage());
    NodeConfig c =
        NodeConfigLoader.fromMap(
            Map.of("role", "expert", "node.id", "pdserve-experts-3", "expert.shard-count", "65"));
    assertThrows(IllegalArgumentException.class, () -> c.expertRange(64));
  }

  @Test
  void shardIndexComesFromTheStatefulSetOrdinalModuloTheCount() {
    assertEquals(OptionalInt.of(12), ExpertSharding.ordinalOf("pdserve-experts-12"));
    assertEquals(OptionalInt.empty(), ExpertSharding.ordinalOf("pdserve-experts"));
    assertEquals(OptionalInt.empty(), ExpertSharding.ordinalOf("e7"));
    for (int ordinal = 0; ordinal < 6; ordinal++) {
      NodeConfig c =
          NodeConfigLoader.fromMap(
              Map.of(
                  "role",
                  "expert",
                  "node.id",
                  "pdserve-experts-" + ordinal,
                  "expert.shard-count",
                  "2"));
      assertEquals(
          ordinal % 2 == 0 ? new ExpertRange(0, 31) : new ExpertRange(32, 63),
          c.expertRange(64),
          "pod ordinal " + ordinal + " of 2 shards x 3 replicas");
    }
    NodeConfig explicit =
        NodeConfigLoader.fromMap(
            Map.of(
                "role",
                "expert",
                "node.id",
                "shard-a",
                "expert.shard-count",
                "4",
                "expert.shard-index",
                "3"));
    assertEquals(new ExpertRange(48, 63), explicit.expertRange(64));
    NodeConfig plain = NodeConfigLoader.fromMap(Map.of("role", "expert", "node.id", "e0"));
    assertFalse(plain.expertSharding().enabled());
    assertEquals(new ExpertRange(0, 63), plain.expertRange(64), "default: every expert");
    NodeConfig ranged = NodeConfigLoader.fromMap(Map.of("role", "expert", "expert.range", "8-15"));
    assertEquals(new ExpertRange(8, 15), ranged.expertRange(64));
  }

  @Test
  void shardSettingErrorsNameTheKeys() {
    assertProblem(
        Map.of(
            "role",
            "expert",
            "node.id",
            "pdserve-experts-0",
            "expert.shard-count",
            "2",
            "expert.range",
            "0-31"),
        NodeConfigLoader.EXPERT_SHARD_COUNT,
        NodeConfigLoader.EXPERT_RANGE);
    assertProblem(
        Map.of("role", "expert", "node.id", "my-shard", "expert.shard-count", "2"),
        NodeConfigLoader.EXPERT_SHARD_COUNT,
        "node id 'my-shard' has none");
    assertProblem(
        Map.of("role", "expert", "node.id", "pdserve-experts-0", "expert.shard-count", "0"),
        NodeConfigLoader.EXPERT_SHARD_COUNT,
        "must be 1..");
    assertProblem(
        Map.of("role", "expert", "expert.shard-index", "1"),
        NodeConfigLoader.EXPERT_SHARD_INDEX,
        NodeConfigLoader.EXPERT_SHARD_COUNT);
    assertProblem(
        Map.of("role", "expert", "expert.shard-count", "2", "expert.shard-index", "2"),
        NodeConfigLoader.EXPERT_SHARD_INDEX,
        "must be 0..1");
    // Other roles may share the keys (one config map for every pod): only experts need an ordinal.
    NodeConfig router =
        NodeConfigLoader.fromMap(
            Map.of("role", "router", "node.id", "pdserve-router-abc", "expert.shard-count", "2"));
    assertTrue(router.expertSharding().enabled());
  }
}
