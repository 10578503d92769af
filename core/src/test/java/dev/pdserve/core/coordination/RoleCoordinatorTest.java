package dev.pdserve.core.coordination;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.testing.FakeTicker;
import dev.pdserve.core.cluster.ClusterMember;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.cluster.TestClusters;
import dev.pdserve.core.cluster.Transition;
import dev.pdserve.core.config.NodeRole;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The coordinator runtime on a real embedded Hazelcast member, its settle time driven by a fake
 * ticker and its ticks run by the test ({@link RoleCoordinator#tickNow}); the scheduled period is
 * an hour, so only the test's ticks and membership events evaluate anything.
 */
class RoleCoordinatorTest {
  private static final Duration SETTLE = Duration.ofSeconds(30);
  private static final Duration NEVER = Duration.ofHours(1);

  private final FakeTicker ticker = new FakeTicker();
  private ClusterMember first;
  private ClusterMember second;
  private NodeRegistry registry;
  private RoleCoordinator coordinator;

  @AfterEach
  void tearDown() {
    if (coordinator != null) {
      coordinator.close();
    }
    if (registry != null) {
      registry.close();
    }
    TestClusters.closeAll(second, first);
  }

  private void tickQuietly() {
    try {
      coordinator.tickNow();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError("interrupted", e);
    }
  }

  @Test
  void plansNothingUntilTheMembershipHasSettledByTheTicker() throws Exception {
    String cluster = TestClusters.newClusterName();
    first = TestClusters.startCoordinatorCandidate(cluster, "coord-a");
    registry = new NodeRegistry(first.hazelcast());
    List<Long> plannedAt = new CopyOnWriteArrayList<>();
    coordinator =
        new RoleCoordinator(
            first.hazelcast(),
            registry,
            "coord-a",
            new RoleCoordinator.Timing(NEVER, SETTLE, ticker),
            (nodes, nowMillis) -> {
              plannedAt.add(nowMillis);
              return Optional.empty();
            },
            (node, req) -> {
              throw new AssertionError("the planner proposed nothing, yet " + req + " ran");
            });

    // The lease map's split-brain protection is first evaluated a heartbeat after the start.
    TestClusters.await(
        Duration.ofSeconds(10),
        () -> {
          tickQuietly();
          return coordinator.isLeading();
        },
        () -> "the only candidate does not lead");
    assertEquals(List.of(), plannedAt, "no plan while the membership settles after the start");
    ticker.advance(SETTLE.minusMillis(1));
    coordinator.tickNow();
    assertEquals(List.of(), plannedAt, "no plan a millisecond before the settle time is up");
    ticker.advance(Duration.ofMillis(1));
    coordinator.tickNow();
    assertEquals(
        List.of(SETTLE.toMillis()), plannedAt, "one plan once settled, at the ticker's time");

    second = TestClusters.start(cluster, "coord-b", first);
    // The join reaches the coordinator as a membership event; from then on it settles again.
    TestClusters.await(
        Duration.ofSeconds(10),
        () -> {
          int before = plannedAt.size();
          tickQuietly();
          return plannedAt.size() == before;
        },
        () -> "the coordinator kept planning after a member joined: " + plannedAt);
    int plans = plannedAt.size();
    ticker.advance(SETTLE.minusMillis(1));
    coordinator.tickNow();
    assertEquals(plans, plannedAt.size(), "no plan while the membership settles after the join");
    ticker.advance(Duration.ofMillis(1));
    coordinator.tickNow();
    assertEquals(plans + 1, plannedAt.size(), "planning again once settled after the join");
    assertTrue(coordinator.isLeading(), "the oldest candidate still leads");
  }

  @Test
  void carriesOutOneSwitchAtATimeThroughTheExecutor() throws Exception {
    first = TestClusters.startCoordinatorCandidate(TestClusters.newClusterName(), "coord-c");
    registry = new NodeRegistry(first.hazelcast());
    NodeInfo p1 =
        registry.register(NodeInfo.starting("p1", NodeRole.PREFILL, "127.0.0.1:1", "", ""));
    Transition t =
        registry.compareAndSet("p1", p1.epoch(), NodeState.STARTING, null, NodeState.ACTIVE);
    assertTrue(t.applied(), t.toString());
    RoleSwitchRequest planned = new RoleSwitchRequest("p1", NodeRole.DECODE, t.epoch(), "test");
    List<Long> plannedAt = new CopyOnWriteArrayList<>();
    BlockingQueue<RoleSwitchRequest> executed = new LinkedBlockingQueue<>();
    CountDownLatch release = new CountDownLatch(1);
    coordinator =
        new RoleCoordinator(
            first.hazelcast(),
            registry,
            "coord-c",
            new RoleCoordinator.Timing(NEVER, Duration.ZERO, ticker),
            (nodes, nowMillis) -> {
              plannedAt.add(nowMillis);
              return Optional.of(planned);
            },
            (node, req) -> {
              executed.add(req);
              try {
                release.await(30, TimeUnit.SECONDS);
              } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
              }
              return new RoleSwitchResult(
                  false, "refused by the test", req.nodeId(), node.role(), req.to(), 0, 0, 0, 0);
            });

    // Leading starts once the lease map's split-brain protection has been evaluated.
    TestClusters.await(
        Duration.ofSeconds(10),
        () -> {
          tickQuietly();
          return !executed.isEmpty();
        },
        () -> "the plan never reached the executor");
    assertEquals(planned, executed.poll(), "the plan goes to the executor");
    coordinator.tickNow();
    assertEquals(1, plannedAt.size(), "no second plan while a switch is in flight");
    release.countDown();
    TestClusters.await(
        Duration.ofSeconds(10),
        () -> {
          tickQuietly();
          return plannedAt.size() == 2;
        },
        () -> "no new plan after the switch ended: " + plannedAt);
    assertEquals(planned, executed.poll(10, TimeUnit.SECONDS), "the next plan is carried out");
  }
}
