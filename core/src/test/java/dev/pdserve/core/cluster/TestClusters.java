package dev.pdserve.core.cluster;

import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeConfigLoader;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import java.util.stream.Collectors;

/**
 * Real embedded Hazelcast members on loopback, any free port, a cluster name of their own, no join
 * wait.
 */
public final class TestClusters {
  private TestClusters() {}

  public static String newClusterName() {
    return "test-" + UUID.randomUUID().toString().substring(0, 8);
  }

  /**
   * A decode node's configuration joining {@code seeds}; {@code settings} (keys without the {@code
   * pdserve.} prefix) are added or override.
   */
  public static NodeConfig config(
      String cluster, String nodeId, Map<String, String> settings, ClusterMember... seeds) {
    Map<String, String> m = new HashMap<>();
    m.put("role", "decode");
    m.put("node.id", nodeId);
    m.put("cluster.name", cluster);
    m.put("cluster.port", "0");
    m.put("cluster.join-wait-seconds", "0");
    m.put(
        "cluster.members",
        Arrays.stream(seeds)
            .map(s -> s.hazelcastAddress().toString())
            .collect(Collectors.joining(",")));
    m.putAll(settings);
    return NodeConfigLoader.fromMap(m);
  }

  public static ClusterMember start(String cluster, String nodeId, ClusterMember... seeds) {
    return ClusterMember.start(config(cluster, nodeId, Map.of(), seeds));
  }

  /** A member that may coordinate ({@code coordinator.enabled}). */
  public static ClusterMember startCoordinatorCandidate(
      String cluster, String nodeId, ClusterMember... seeds) {
    return ClusterMember.start(
        config(cluster, nodeId, Map.of("coordinator.enabled", "true"), seeds));
  }

  /** Closes members in parallel (a graceful leave takes about a second each). */
  public static void closeAll(ClusterMember... members) {
    CompletableFuture.allOf(
            Arrays.stream(members)
                .filter(m -> m != null)
                .map(m -> CompletableFuture.runAsync(m::close))
                .toArray(CompletableFuture[]::new))
        .join();
  }

  /** Polls until {@code condition} holds; fails with {@code what} after {@code timeout}. */
  public static void await(Duration timeout, BooleanSupplier condition, Supplier<String> what)
      throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("not within " + timeout + ": " + what.get());
      }
      Thread.sleep(20);
    }
  }
}
