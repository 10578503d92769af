package dev.pdserve.core.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.config.NodeRole;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Members leaving (gracefully or by crashing) take their registry entries with them, within the
 * heartbeat bound (5 s by default), and the coordinator role moves to the next oldest member. The
 * deadlines below are generous bounds, not benchmarks; the measured times are logged.
 */
class MemberDepartureTest {
  private static final Logger LOG = LogManager.getLogger(MemberDepartureTest.class);

  /** max-no-heartbeat (5 s) plus slack for a loaded 2-core CI machine. */
  private static final Duration BOUND = Duration.ofSeconds(20);

  private ClusterMember survivor;
  private ClusterMember leaver;
  private NodeRegistry survivorRegistry;
  private NodeRegistry leaverRegistry;

  @AfterEach
  void tearDown() {
    if (leaverRegistry != null) {
      leaverRegistry.close();
    }
    if (survivorRegistry != null) {
      survivorRegistry.close();
    }
    TestClusters.closeAll(survivor, leaver);
  }

  private void startPair() {
    String cluster = TestClusters.newClusterName();
    survivor = TestClusters.start(cluster, "survivor");
    leaver = TestClusters.start(cluster, "leaver", survivor);
    survivorRegistry = new NodeRegistry(survivor.hazelcast());
    leaverRegistry = new NodeRegistry(leaver.hazelcast());
    NodeRegistryTest.active(survivorRegistry, "survivor-node", NodeRole.PREFILL);
    NodeRegistryTest.active(leaverRegistry, "leaver-node", NodeRole.PREFILL);
    assertEquals(
        List.of("leaver-node", "survivor-node"),
        ids(survivorRegistry.activeNodes(NodeRole.PREFILL)));
  }

  private static List<String> ids(List<NodeInfo> nodes) {
    return nodes.stream().map(NodeInfo::id).toList();
  }

  @Test
  void aMemberThatShutsDownLeavesActiveNodes() throws Exception {
    startPair();
    leaverRegistry.close();
    leaverRegistry = null;
    long t0 = System.nanoTime();
    leaver.close();
    TestClusters.await(
        BOUND,
        () -> ids(survivorRegistry.activeNodes(NodeRole.PREFILL)).equals(List.of("survivor-node")),
        () -> "active prefill nodes still " + ids(survivorRegistry.activeNodes(NodeRole.PREFILL)));
    LOG.info(
        "gracefully stopped member's node left the registry {} ms after close() began",
        (System.nanoTime() - t0) / 1_000_000);
    assertEquals(1, survivor.clusterSize());
  }

  @Test
  void aMemberTerminatedAbruptlyLeavesActiveNodesWithinTheHeartbeatBound() throws Exception {
    startPair();
    long t0 = System.nanoTime();
    leaver.terminate();
    TestClusters.await(
        BOUND,
        () -> ids(survivorRegistry.activeNodes(NodeRole.PREFILL)).equals(List.of("survivor-node")),
        () -> "active prefill nodes still " + ids(survivorRegistry.activeNodes(NodeRole.PREFILL)));
    LOG.info(
        "terminated member's node left the registry after {} ms",
        (System.nanoTime() - t0) / 1_000_000);
    assertEquals(1, survivor.clusterSize());
  }

  @Test
  void coordinatorMovesToTheNextOldestMember() throws Exception {
    String cluster = TestClusters.newClusterName();
    leaver = TestClusters.start(cluster, "old");
    survivor = TestClusters.start(cluster, "young", leaver);
    BlockingQueue<Boolean> oldCalls = new LinkedBlockingQueue<>();
    BlockingQueue<Boolean> youngCalls = new LinkedBlockingQueue<>();
    leaver.onCoordinatorChange(oldCalls::add);
    survivor.onCoordinatorChange(youngCalls::add);
    assertEquals(true, oldCalls.poll());
    assertEquals(false, youngCalls.poll());

    leaver.close();

    assertEquals(
        false,
        oldCalls.poll(10, TimeUnit.SECONDS),
        "the closed member hears it is no longer the coordinator");
    assertEquals(
        true,
        youngCalls.poll(BOUND.toSeconds(), TimeUnit.SECONDS),
        "the survivor becomes the coordinator");
    assertTrue(survivor.isOldestMember());
    assertEquals(null, youngCalls.poll(200, TimeUnit.MILLISECONDS), "one change, one call");
  }

  @Test
  void orphanedEntriesAreSweptOnRequest() throws Exception {
    String cluster = TestClusters.newClusterName();
    survivor = TestClusters.start(cluster, "solo");
    survivorRegistry = new NodeRegistry(survivor.hazelcast());
    NodeInfo ghost = NodeRegistryTest.active(survivorRegistry, "ghost", NodeRole.DECODE);
    // Pretend its member left unnoticed: rewrite the entry with a member id nobody has.
    survivor
        .hazelcast()
        .<String, NodeInfo>getMap(NodeRegistry.MAP_NAME)
        .put(
            "ghost",
            new NodeInfo(
                "ghost",
                ghost.role(),
                ghost.state(),
                ghost.epoch(),
                "00000000-0000-0000-0000-000000000000",
                ghost.grpcAddress(),
                ghost.flightAddress(),
                ghost.metricsUrl(),
                ghost.load(),
                ghost.updatedAtMillis()));
    NodeRegistryTest.active(survivorRegistry, "alive", NodeRole.DECODE);
    assertEquals(1, survivorRegistry.removeOrphans());
    assertEquals(List.of("alive"), ids(survivorRegistry.all()));
  }
}
