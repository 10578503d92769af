package dev.pdserve.core.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.coordination.CoordinatorLease;
import dev.pdserve.core.coordination.CoordinatorLeaseStore;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;

/**
 * A worker member in a child JVM is frozen (SIGSTOP) past the heartbeat bound and woken (SIGCONT):
 * the cluster gives it up, its entry goes; on waking it never acts as a second coordinator, never
 * removes the live nodes' entries or their shards from the expert placement, rejoins and registers
 * again under a member id the cluster lists.
 *
 * <p>A harness run by hand ({@code -Dpdserve.freezeTest=true}), not in CI: it needs a child JVM
 * that starts within 60 s and a freeze of ~12 s, too slow and too timing-bound for the shared
 * 2-core build machine (its first run there failed before the freeze, the child slow to start).
 * Green on a quiet machine on 4 December 2026 (22 s; docs/RELIABILITY.md "Freezes").
 */
@EnabledIfSystemProperty(named = "pdserve.freezeTest", matches = "true")
class FreezeFencingTest {
  private static final Logger LOG = LogManager.getLogger(FreezeFencingTest.class);

  private ClusterMember a;
  private ClusterMember b;
  private NodeRegistry regA;
  private Process frozen;
  private final List<String> output = new CopyOnWriteArrayList<>();

  @AfterEach
  void tearDown() {
    if (frozen != null) {
      frozen.destroyForcibly();
    }
    if (regA != null) {
      regA.close();
    }
    TestClusters.closeAll(b, a);
  }

  private Process startChild(String cluster, String nodeId) throws Exception {
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    for (String arg : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (arg.startsWith("--add-")
          || arg.startsWith("-Dhazelcast.")
          || arg.startsWith("-Djava.util.logging.manager")) {
        cmd.add(arg);
      }
    }
    cmd.addAll(
        List.of(
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-cp",
            System.getProperty("java.class.path"),
            FrozenMemberMain.class.getName(),
            cluster,
            a.hazelcastAddress().toString(),
            nodeId,
            "2"));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    Thread reader =
        new Thread(
            () -> {
              try (BufferedReader r =
                  new BufferedReader(
                      new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) {
                  output.add(line);
                  if (line.startsWith("READY")
                      || line.startsWith("MEMBER")
                      || line.startsWith("REGISTERED")
                      || line.startsWith("ACTED")
                      || line.startsWith("REFUSED")) {
                    LOG.info("child: {}", line);
                  }
                }
              } catch (Exception e) {
                // process gone
              }
            },
            "frozen-member-output");
    reader.setDaemon(true);
    reader.start();
    return p;
  }

  private static void signal(Process p, String sig) throws Exception {
    Process kill =
        new ProcessBuilder("kill", "-" + sig, Long.toString(p.pid())).inheritIO().start();
    assertEquals(0, kill.waitFor(), "kill -" + sig + " failed");
  }

  private Optional<NodeInfo> entry(String id) {
    try {
      return regA.get(id);
    } catch (RuntimeException e) {
      return Optional.empty();
    }
  }

  private boolean lines(String prefix) {
    return output.stream().anyMatch(l -> l.startsWith(prefix));
  }

  @Test
  void aFrozenMemberIsFencedAndOnWakingRejoinsAsANewMemberWithoutHarm() throws Exception {
    assumeTrue(
        !System.getProperty("os.name").toLowerCase(Locale.ROOT).startsWith("windows"),
        "needs kill -STOP");
    String cluster = TestClusters.newClusterName();
    java.util.Map<String, String> s =
        java.util.Map.of("coordinator.enabled", "true", "cluster.merge-interval-seconds", "2");
    a = ClusterMember.start(TestClusters.config(cluster, "live-a", s));
    b = ClusterMember.start(TestClusters.config(cluster, "live-b", s, a));
    regA = new NodeRegistry(a.hazelcast());
    NodeRegistry regB = new NodeRegistry(b.hazelcast());
    List<NodeChange> liveRemovals = new CopyOnWriteArrayList<>();
    try (Subscription sub =
        regA.addListener(
            c -> {
              if (c.kind() == NodeChange.Kind.REMOVED && c.id().startsWith("live-")) {
                liveRemovals.add(c);
              }
            })) {
      for (var r : List.of(regA, regB)) {
        NodeRegistry reg = r;
        String id = reg == regA ? "live-a" : "live-b";
        NodeInfo n = reg.register(NodeInfo.starting(id, NodeRole.DECODE, "h:1", "", ""));
        reg.compareAndSet(id, n.epoch(), NodeState.STARTING, null, NodeState.ACTIVE);
      }
      CoordinatorLeaseStore leases = new CoordinatorLeaseStore(a.hazelcast());
      TestClusters.await(
          Duration.ofSeconds(10),
          () ->
              leases
                  .acquire("live-a", a.memberId().toString(), 0)
                  .memberId()
                  .equals(a.memberId().toString()),
          () -> "a never took the coordinator lease");
      CoordinatorLease term = leases.current().orElseThrow();
      // The live members host experts; the frozen one follows (and prunes) the placement.
      ExpertPlacementStore placements = new ExpertPlacementStore(a.hazelcast());
      ExpertPlacement placed =
          new ExpertPlacement(
              1,
              java.util.Map.of(
                  new ExpertPlacement.ExpertKey(0, 0, 0),
                  List.of("live-a"),
                  new ExpertPlacement.ExpertKey(0, 0, 1),
                  List.of("live-b")));
      assertTrue(placements.publish(placed));

      frozen = startChild(cluster, "frozen-f");
      TestClusters.await(
          Duration.ofSeconds(60), () -> lines("READY"), () -> "child not ready: " + output);
      String firstMember = entry("frozen-f").orElseThrow().memberId();
      assertEquals(3, a.clusterSize());

      signal(frozen, "STOP");
      long frozenAt = System.nanoTime();
      TestClusters.await(
          Duration.ofSeconds(30),
          () -> entry("frozen-f").isEmpty() && a.clusterSize() == 2,
          () -> "the frozen member was not given up");
      long detectedMs = (System.nanoTime() - frozenAt) / 1_000_000;
      LOG.info("FREEZE detected (member removed, entry gone) after {} ms", detectedMs);
      // Stay frozen a while longer: on waking it has heard nothing for well over the bound.
      Thread.sleep(4_000);
      signal(frozen, "CONT");
      long wokenAt = System.nanoTime();
      TestClusters.await(
          Duration.ofSeconds(60),
          () ->
              entry("frozen-f")
                  .filter(n -> n.state() == NodeState.ACTIVE)
                  .filter(n -> !n.memberId().equals(firstMember))
                  .filter(n -> Liveness.isMember(a.hazelcast(), n.memberId()))
                  .isPresent(),
          () -> "the woken node did not register again as a live member: " + output);
      LOG.info(
          "FREEZE woken node re-registered after {} ms", (System.nanoTime() - wokenAt) / 1_000_000);

      assertEquals(3, a.clusterSize(), "the woken node is a member again");
      assertNotEquals(firstMember, entry("frozen-f").orElseThrow().memberId());
      assertEquals(List.of(), liveRemovals, "no live node's entry was removed");
      assertTrue(entry("live-a").isPresent() && entry("live-b").isPresent());
      assertEquals(term, leases.current().orElseThrow(), "the coordinator lease never moved");
      assertEquals(
          placed,
          placements.current().orElseThrow(),
          "the woken member, alone, pruned no live shard from the placement");
      assertTrue(
          output.stream().noneMatch(l -> l.startsWith("ACTED")),
          "the woken node acted as coordinator: " + output);
      // It serves: its load updates are taken again.
      long before = entry("frozen-f").orElseThrow().updatedAtMillis();
      TestClusters.await(
          Duration.ofSeconds(10),
          () -> entry("frozen-f").map(NodeInfo::updatedAtMillis).orElse(0L) > before,
          () -> "the woken node's load updates are refused");
    } finally {
      regB.close();
    }
  }
}
