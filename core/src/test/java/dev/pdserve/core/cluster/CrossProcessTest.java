package dev.pdserve.core.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.hazelcast.cluster.MembershipEvent;
import com.hazelcast.cluster.MembershipListener;
import dev.pdserve.core.config.NodeRole;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A member in a second JVM: registry values and entry processors cross the process boundary
 * (Compact and IdentifiedDataSerializable, no Java serialization), and when that process freezes
 * (SIGSTOP: its sockets stay open, only heartbeats stop) its nodes leave the registry within the
 * heartbeat bound.
 */
class CrossProcessTest {
  private static final Logger LOG = LogManager.getLogger(CrossProcessTest.class);

  private ClusterMember local;
  private NodeRegistry registry;
  private Process remote;
  private final List<String> remoteOutput = new CopyOnWriteArrayList<>();

  @AfterEach
  void tearDown() {
    if (remote != null) {
      remote.destroyForcibly();
    }
    if (registry != null) {
      registry.close();
    }
    TestClusters.closeAll(local);
  }

  private Process startRemote(String cluster) throws Exception {
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
            System.getProperty("java.class.path")));
    cmd.addAll(
        List.of(RemoteMemberMain.class.getName(), cluster, local.hazelcastAddress().toString()));
    return new ProcessBuilder(cmd).redirectErrorStream(true).start();
  }

  private UUID awaitReady(Process p) throws Exception {
    CompletableFuture<UUID> ready = new CompletableFuture<>();
    Thread reader =
        new Thread(
            () -> {
              try (BufferedReader r =
                  new BufferedReader(
                      new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) {
                  remoteOutput.add(line);
                  if (line.startsWith("READY ")) {
                    ready.complete(UUID.fromString(line.substring(6).trim()));
                  }
                }
              } catch (Exception e) {
                // process gone
              }
              ready.completeExceptionally(
                  new AssertionError(
                      "remote member exited before READY:\n" + String.join("\n", remoteOutput)));
            },
            "remote-member-output");
    reader.setDaemon(true);
    reader.start();
    return ready.get(60, TimeUnit.SECONDS);
  }

  private List<String> activeRemoteIds() {
    try {
      return registry.activeNodes(NodeRole.DECODE).stream()
          .map(NodeInfo::id)
          .filter(id -> id.startsWith("remote-"))
          .toList();
    } catch (RuntimeException e) { // a query in flight when the frozen member is dropped
      LOG.info("registry query failed while the member was being removed: {}", e.toString());
      return List.of("query-failed");
    }
  }

  @Test
  void registryCrossesProcessesAndAFrozenMemberLeavesWithinTheHeartbeatBound() throws Exception {
    assumeTrue(
        !System.getProperty("os.name").toLowerCase(Locale.ROOT).startsWith("windows"),
        "needs kill -STOP");
    String cluster = TestClusters.newClusterName();
    local = TestClusters.start(cluster, "local");
    registry = new NodeRegistry(local.hazelcast());
    long t0 = System.nanoTime();
    remote = startRemote(cluster);
    UUID remoteMember = awaitReady(remote);
    LOG.info(
        "remote member {} ready after {} ms", remoteMember, (System.nanoTime() - t0) / 1_000_000);
    assertEquals(2, local.clusterSize());

    // Values written by the other JVM read back field for field here.
    for (int i = 0; i < RemoteMemberMain.NODES; i++) {
      NodeInfo n = registry.get("remote-" + i).orElseThrow();
      assertEquals(NodeState.ACTIVE, n.state());
      assertEquals(1, n.epoch());
      assertEquals(RemoteMemberMain.loadOf(i), n.load());
      assertEquals(remoteMember.toString(), n.memberId());
    }
    assertEquals(
        RemoteMemberMain.placement(),
        new ExpertPlacementStore(local.hazelcast()).current().orElseThrow());

    // Entry processors sent from here run on whichever JVM owns the key; make sure some run
    // remotely.
    int ownedRemotely = 0;
    for (int i = 0; i < RemoteMemberMain.NODES; i++) {
      String id = "remote-" + i;
      if (local
          .hazelcast()
          .getPartitionService()
          .getPartition(id)
          .getOwner()
          .getUuid()
          .equals(remoteMember)) {
        ownedRemotely++;
      }
      Transition t = registry.compareAndSet(id, 1, NodeState.ACTIVE, null, NodeState.ACTIVE);
      assertTrue(t.applied(), t.toString());
      assertEquals(2, t.epoch());
      assertEquals(
          Transition.Outcome.STALE_EPOCH,
          registry
              .compareAndSet(id, 1, NodeState.ACTIVE, NodeRole.PREFILL, NodeState.DRAINING)
              .outcome());
    }
    assertTrue(
        ownedRemotely > 0,
        "no key owned by the remote member: the processors never crossed processes");
    assertEquals(RemoteMemberMain.NODES, activeRemoteIds().size());

    // Freeze the process: connections stay open, heartbeats stop.
    CompletableFuture<UUID> removedMember = new CompletableFuture<>();
    local
        .hazelcast()
        .getCluster()
        .addMembershipListener(
            new MembershipListener() {
              @Override
              public void memberAdded(MembershipEvent event) {}

              @Override
              public void memberRemoved(MembershipEvent event) {
                removedMember.complete(event.getMember().getUuid());
              }
            });
    Process kill =
        new ProcessBuilder("kill", "-STOP", Long.toString(remote.pid())).inheritIO().start();
    assertEquals(0, kill.waitFor(), "kill -STOP failed");
    long frozenAt = System.nanoTime();
    TestClusters.await(
        Duration.ofSeconds(30),
        () -> activeRemoteIds().isEmpty(),
        () -> "remote nodes still active: " + activeRemoteIds());
    LOG.info(
        "frozen member's nodes left the registry after {} ms (max-no-heartbeat 5 s)",
        (System.nanoTime() - frozenAt) / 1_000_000);
    // What removed them: the frozen member's removal from the cluster (its process is alive, its
    // sockets open, so only the missing heartbeats can have told), not its process ending.
    assertTrue(remote.isAlive(), "the frozen process ended: its exit, not heartbeats, removed it");
    assertEquals(
        remoteMember,
        removedMember.get(10, TimeUnit.SECONDS),
        "the member removed from the cluster before its nodes left the registry");
    assertEquals(1, local.clusterSize());
  }
}
