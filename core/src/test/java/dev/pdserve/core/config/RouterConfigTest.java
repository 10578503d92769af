package dev.pdserve.core.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/**
 * The router's failure and overload keys: {@code pdserve.router.migration-limit}, {@code
 * -stream-silence-timeout}, {@code -max-queue-delay} (defaulting from the TTFT target), {@code
 * -prefill-tokens-per-second} and {@code pdserve.kv.failure-policy}.
 */
class RouterConfigTest {
  private static RouterConfig read(Map<String, String> settings) {
    return NodeConfigLoader.fromMap(settings).router();
  }

  @Test
  void defaults() {
    RouterConfig c = read(Map.of("role", "router"));
    assertEquals(RouterConfig.DEFAULTS, c);
    assertEquals(3, c.migrationLimit());
    assertEquals(KvFailurePolicy.RECOMPUTE, c.kvFailurePolicy());
    assertEquals(Duration.ofSeconds(10), c.streamSilenceTimeout());
    assertEquals(Duration.ofSeconds(6), c.maxQueueDelay(), "3 × the 2 s TTFT target");
    assertEquals(10_000, c.prefillTokensPerSecond());
  }

  @Test
  void aTextOnlyDeploymentRefusesImagesAtTheRouterUnlessALimitIsSet() {
    assertEquals(
        ImageIntakeSettings.DEFAULT_MAX_PER_PROMPT,
        read(Map.of("role", "router")).images().maxPerPrompt());
    assertEquals(
        0, read(Map.of("role", "router", "vision.enabled", "false")).images().maxPerPrompt());
    assertEquals(
        2,
        read(Map.of(
                "role", "router", "vision.enabled", "false", "router.images.max-per-prompt", "2"))
            .images()
            .maxPerPrompt());
    assertTrue(NodeConfigLoader.fromMap(Map.of("role", "decode")).engine().visionEnabled());
    assertEquals(
        false,
        NodeConfigLoader.fromMap(Map.of("role", "decode", "vision.enabled", "false"))
            .engine()
            .visionEnabled());
  }

  @Test
  void theQueueDelayBoundFollowsTheTtftTargetUnlessSet() {
    assertEquals(
        Duration.ofMillis(1500),
        read(Map.of("role", "router", "coordinator.ttft-target-ms", "500")).maxQueueDelay());
    assertEquals(
        Duration.ofMillis(750),
        read(Map.of(
                "role",
                "router",
                "coordinator.ttft-target-ms",
                "500",
                "router.max-queue-delay",
                "750ms"))
            .maxQueueDelay());
    assertEquals(
        Duration.ZERO,
        read(Map.of("role", "router", "router.max-queue-delay", "0")).maxQueueDelay());
  }

  @Test
  void everyKeyIsReadFromFlagsOrTheEnvironment() {
    RouterConfig c =
        read(
            Map.of(
                "role", "router",
                "router.migration-limit", "0",
                "kv.failure-policy", "FAIL",
                "router.stream-silence-timeout", "30s",
                "router.prefill-tokens-per-second", "2500"));
    assertEquals(
        new RouterConfig(
            0, KvFailurePolicy.FAIL, Duration.ofSeconds(30), Duration.ofSeconds(6), 2500),
        c);
    NodeConfig fromEnv =
        NodeConfigLoader.load(
            Optional.empty(),
            Map.of(
                "PDSERVE_ROLE", "router",
                "PDSERVE_ROUTER_MIGRATION_LIMIT", "5",
                "PDSERVE_KV_FAILURE_POLICY", "fail",
                "PDSERVE_ROUTER_MAX_QUEUE_DELAY", "2s"),
            Map.of());
    assertEquals(5, fromEnv.router().migrationLimit());
    assertEquals(KvFailurePolicy.FAIL, fromEnv.router().kvFailurePolicy());
    assertEquals(Duration.ofSeconds(2), fromEnv.router().maxQueueDelay());
  }

  @Test
  void badValuesNameTheirKey() {
    NodeConfigException e =
        assertThrows(
            NodeConfigException.class,
            () ->
                NodeConfigLoader.fromMap(
                    Map.of(
                        "role", "router",
                        "router.migration-limit", "-1",
                        "kv.failure-policy", "retry",
                        "router.stream-silence-timeout", "soon",
                        "router.prefill-tokens-per-second", "0")));
    for (String key :
        new String[] {
          "pdserve.router.migration-limit",
          "pdserve.kv.failure-policy: must be recompute or fail",
          "pdserve.router.stream-silence-timeout",
          "pdserve.router.prefill-tokens-per-second"
        }) {
      assertTrue(
          e.problems().stream().anyMatch(p -> p.startsWith(key)),
          "expected a problem starting with " + key + ", got " + e.problems());
    }
  }
}
