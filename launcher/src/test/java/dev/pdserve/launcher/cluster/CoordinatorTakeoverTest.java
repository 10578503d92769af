package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.internal.v1.AdminServiceGrpc;
import dev.pdserve.internal.v1.ListNodesRequest;
import dev.pdserve.internal.v1.ListNodesResponse;
import dev.pdserve.launcher.node.WorkerNode;
import dev.pdserve.router.RouterOptions;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Exactly one coordinator at a time; when its node dies, the next oldest worker takes over. */
class CoordinatorTakeoverTest {
  InJvmCluster cluster;

  @AfterEach
  void stop() {
    if (cluster != null) {
      cluster.close();
    }
  }

  ListNodesResponse nodes() {
    return AdminServiceGrpc.newBlockingStub(cluster.channel)
        .withDeadlineAfter(10, TimeUnit.SECONDS)
        .listNodes(ListNodesRequest.getDefaultInstance());
  }

  long leaders(List<WorkerNode> workers) {
    return workers.stream()
        .filter(w -> w.coordinator().map(c -> c.isLeading()).orElse(false))
        .count();
  }

  @Test
  void killingTheCoordinatorsNodeHandsCoordinationToTheNextWorker() throws Exception {
    cluster =
        new InJvmCluster()
            .set("coordinator.enabled", "true")
            .set("coordinator.period-ms", "200")
            .set("cluster.max-no-heartbeat-seconds", "3");
    WorkerNode d0 = cluster.addWorker("decode", Map.of());
    WorkerNode p0 = cluster.addWorker("prefill", Map.of());
    WorkerNode d1 = cluster.addWorker("decode", Map.of());
    cluster.startRouter(RouterOptions.defaults());
    cluster.awaitRouterSees(1, 2);

    InJvmCluster.await(
        Duration.ofSeconds(10),
        () -> nodes().getCoordinatorNodeId().equals("d0"),
        "the oldest worker d0 to be the coordinator");
    assertEquals(1, nodes().getCoordinatorTerm());
    assertEquals(1, leaders(List.of(d0, d1, p0)), "exactly one coordinator");

    d0.member().terminate(); // a crash: no graceful leave
    // A generous bound (heartbeat bound 3 s), not a speed requirement: what counts is that the
    // takeover happens.
    InJvmCluster.await(
        Duration.ofSeconds(60),
        () -> nodes().getCoordinatorNodeId().equals("p0"),
        "p0 (the next oldest worker) to take over");
    assertEquals(2, nodes().getCoordinatorTerm(), "a takeover starts a new term");
    assertTrue(p0.coordinator().orElseThrow().isLeading(), "p0 leads after the takeover");
    assertEquals(1, leaders(List.of(d1, p0)), "exactly one coordinator after the takeover");
    InJvmCluster.await(
        Duration.ofSeconds(30),
        () -> cluster.router.directory().get("d0").isEmpty(),
        "the dead node to leave the registry");
  }
}
