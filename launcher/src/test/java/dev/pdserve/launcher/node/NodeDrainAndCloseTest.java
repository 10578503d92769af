package dev.pdserve.launcher.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.testing.FakeTicker;
import dev.pdserve.core.cluster.ClusterMember;
import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.core.cluster.ExpertPlacementStore;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.cluster.Subscription;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.launcher.node.Closer.Closed;
import dev.pdserve.launcher.node.Closer.Stage;
import dev.pdserve.router.RouterOptions;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The node skeleton ({@link NodeRuntime}) as each kind uses it: a real worker, router or expert
 * shard in this JVM (embedded Hazelcast on loopback beside an observing member, gRPC, Flight and
 * metrics on port 0, real ONNX Runtime sessions), idle, drained and closed. Its readiness names go
 * NOT_SERVING while the overall health stays SERVING, which goes NOT_SERVING when the server stops;
 * its registry entry goes DRAINING, then disappears; every resource it opened closes once, in stage
 * order (servers before sessions, the member before the Arrow allocator, which holds zero bytes;
 * the expert shard's sessions too); no thread it started is left alive; its drain reads the node's
 * clock, a {@link FakeTicker}.
 */
class NodeDrainAndCloseTest {
  private static final Duration BOUND = Duration.ofSeconds(20);

  private final String clusterName = "skeleton-" + UUID.randomUUID().toString().substring(0, 8);
  private final List<String> registryStates = new CopyOnWriteArrayList<>();
  private final CountDownLatch deregistered = new CountDownLatch(1);
  private ClusterMember observer;
  private NodeRegistry observed;
  private Subscription registryEvents;
  private Set<Thread> threadsBefore;

  /** Node settings (keys without the {@code pdserve.} prefix), joining the observer. */
  private NodeConfig config(String role, String id, Map<String, String> more) {
    Map<String, String> m = new HashMap<>();
    m.put("role", role);
    m.put("node.id", id);
    m.put("bind.host", "127.0.0.1");
    m.put("grpc.port", "0");
    m.put("flight.port", "0");
    m.put("cluster.name", clusterName);
    m.put("cluster.port", "0");
    m.put("cluster.join-wait-seconds", "0");
    m.put("kv.budget-bytes", "8m");
    m.put("ort.threads", "2");
    m.put("coordinator.enabled", "false");
    if (observer != null) {
      m.put("cluster.members", observer.hazelcastAddress().toString());
    }
    m.putAll(more);
    return NodeConfigLoader.fromMap(m);
  }

  @BeforeEach
  void startObserver() {
    // A plain member beside the node: it holds registry data (a router needs one), and watches.
    observer = ClusterMember.start(config("expert", "observer", Map.of()));
    observed = new NodeRegistry(observer.hazelcast());
    threadsBefore = Thread.getAllStackTraces().keySet();
  }

  @AfterEach
  void stopObserver() {
    if (registryEvents != null) {
      registryEvents.close();
    }
    observed.close();
    observer.close();
  }

  /** Records the registry states of node {@code id} as the observer sees them change. */
  private void watchRegistry(String id) {
    registryEvents =
        observed.addListener(
            change -> {
              if (change.id().equals(id)) {
                registryStates.add(
                    change.current() == null ? "REMOVED" : change.current().state().name());
                if (change.current() == null) {
                  deregistered.countDown();
                }
              }
            });
  }

  @Test
  void workerGoesNotServingDrainingThenGoneAndClosesEverythingItOpened() throws Exception {
    FakeTicker clock = new FakeTicker();
    RootAllocator allocator = new RootAllocator();
    WorkerNode worker =
        WorkerNode.start(
            config("decode", "d0", Map.of("coordinator.enabled", "true")),
            allocator,
            WorkerNode.ExpertBackendFactory.fromConfig(),
            clock);
    try (allocator) {
      assertEquals("ACTIVE", observed.get("d0").orElseThrow().state().name(), "registered");
      Map<String, ServingStatus> startHealth =
          checks(
              worker.grpcAddress(),
              NodeRole.WORKER_HEALTH_SERVICE,
              "pdserve.decode",
              "pdserve.prefill",
              "");
      assertEquals(
          Map.of(
              NodeRole.WORKER_HEALTH_SERVICE,
              ServingStatus.SERVING,
              "pdserve.decode",
              ServingStatus.SERVING,
              "pdserve.prefill",
              ServingStatus.NOT_SERVING,
              "",
              ServingStatus.SERVING),
          startHealth,
          "a started decode worker");
      watchRegistry("d0");
      HealthWatch health =
          new HealthWatch(
              worker.grpcAddress(),
              List.of(NodeRole.WORKER_HEALTH_SERVICE, "pdserve.decode", "pdserve.prefill", ""));
      List<String> phases = new CopyOnWriteArrayList<>();
      worker.onDrainPhase(phaseRecorder(phases, worker.grpcAddress(), "d0", health));

      DrainSummary summary = worker.drainAndClose(Duration.ofSeconds(10));

      assertEquals(
          List.of(
              "DRAINING pdserve.worker=NOT_SERVING pdserve.decode=NOT_SERVING"
                  + " pdserve.prefill=NOT_SERVING overall=SERVING registry=DRAINING",
              "CLOSING pdserve.worker=NOT_SERVING pdserve.decode=NOT_SERVING"
                  + " pdserve.prefill=NOT_SERVING overall=SERVING registry=DRAINING"),
          phases,
          "readiness names NOT_SERVING from the start of the drain; the overall health SERVING"
              + " until the server stops; no migration (nothing ran)");
      health.awaitServerStopped();
      assertEquals(
          Map.of(
              NodeRole.WORKER_HEALTH_SERVICE,
              List.of("SERVING", "NOT_SERVING"),
              "pdserve.decode",
              List.of("SERVING", "NOT_SERVING"),
              "pdserve.prefill",
              List.of("NOT_SERVING"),
              "",
              List.of("SERVING", "NOT_SERVING")),
          health.byName(),
          "health as a watcher saw it change");
      assertDeregisteredAfterDraining();
      assertEquals(
          new DrainSummary("d0", 0, 0, 0, 0, 0, 0),
          summary,
          "an idle worker: nothing held; elapsed on the node's clock, which did not move");
      assertEquals(
          List.of(
              new Closed(Stage.PRESENCE, "coordinator"),
              new Closed(Stage.PRESENCE, "registry-presence"),
              new Closed(Stage.WORK, "decode-engine"),
              new Closed(Stage.WORK, "prefill-engine"),
              new Closed(Stage.ENDPOINTS, "grpc-server"),
              new Closed(Stage.ENDPOINTS, "kv-transfer-server"),
              new Closed(Stage.ENDPOINTS, "metrics"),
              new Closed(Stage.RESOURCES, "kv-transfer-client"),
              new Closed(Stage.RESOURCES, "kv-pool"),
              new Closed(Stage.RESOURCES, "vision-encoder"), // the tiny preset has a vision tower
              new Closed(Stage.RESOURCES, "channels"),
              new Closed(Stage.RESOURCES, "expert-compute"),
              new Closed(Stage.RESOURCES, "model-runner"),
              new Closed(Stage.RESOURCES, "model-weights"),
              new Closed(Stage.RESOURCES, "model"),
              new Closed(Stage.RESOURCES, "cluster-tls"),
              new Closed(Stage.CLUSTER, "node-registry"),
              new Closed(Stage.CLUSTER, "cluster-member"),
              new Closed(Stage.MEMORY, "worker-allocator")),
          worker.runtime().closed(),
          "what the worker closed, in order (each once)");
      assertTrue(
          worker.runtime().stillOpen().isEmpty(), "still open: " + worker.runtime().stillOpen());
      assertEquals(0, allocator.getAllocatedMemory(), "Arrow bytes still held");
      assertTrue(
          allocator.getChildAllocators().isEmpty(),
          "child allocators left: " + allocator.getChildAllocators());
      assertEquals(summary, worker.drainAndClose(Duration.ofSeconds(10)), "a second drain");
      assertNoThreadLeftOf("d0");
    }
  }

  @Test
  void routerGoesNotServingDrainingThenGoneAndClosesEverythingItOpened() throws Exception {
    FakeTicker clock = new FakeTicker();
    RouterNode router =
        RouterNode.start(
            config("router", "r0", Map.of("cluster.lite-member", "true")),
            RouterOptions.defaults(),
            clock);
    assertEquals("ACTIVE", observed.get("r0").orElseThrow().state().name(), "registered");
    watchRegistry("r0");
    HealthWatch health = new HealthWatch(router.grpcAddress(), List.of("pdserve.router", ""));
    List<String> phases = new CopyOnWriteArrayList<>();
    router.onDrainPhase(phaseRecorder(phases, router.grpcAddress(), "r0", health));

    DrainSummary summary = router.drainAndClose(Duration.ofSeconds(10));

    assertEquals(
        List.of(
            "DRAINING pdserve.router=NOT_SERVING overall=SERVING registry=DRAINING",
            "CLOSING pdserve.router=NOT_SERVING overall=SERVING registry=DRAINING"),
        phases);
    health.awaitServerStopped();
    assertEquals(
        Map.of(
            "pdserve.router", List.of("SERVING", "NOT_SERVING"),
            "", List.of("SERVING", "NOT_SERVING")),
        health.byName(),
        "health as a watcher saw it change");
    assertDeregisteredAfterDraining();
    assertEquals(new DrainSummary("r0", 0, 0, 0, 0, 0, 0), summary);
    assertEquals(
        List.of(
            new Closed(Stage.PRESENCE, "registry-presence"),
            new Closed(Stage.WORK, "router"),
            new Closed(Stage.ENDPOINTS, "grpc-server"),
            new Closed(Stage.ENDPOINTS, "http-server"),
            new Closed(Stage.ENDPOINTS, "metrics"),
            new Closed(Stage.RESOURCES, "public-api-tls"),
            new Closed(Stage.RESOURCES, "channels"),
            new Closed(Stage.RESOURCES, "model"),
            new Closed(Stage.RESOURCES, "cluster-tls"),
            new Closed(Stage.CLUSTER, "node-directory"),
            new Closed(Stage.CLUSTER, "node-registry"),
            new Closed(Stage.CLUSTER, "cluster-member")),
        router.runtime().closed(),
        "what the router closed, in order (each once)");
    assertTrue(
        router.runtime().stillOpen().isEmpty(), "still open: " + router.runtime().stillOpen());
    assertNoThreadLeftOf("r0");
  }

  @Test
  void expertShardLeavesThePlacementGoesNotServingAndClosesItsSessions() throws Exception {
    // Each read of the clock moves it 50 ms: the shard's quiet wait (200 ms) passes by itself.
    FakeTicker clock = new FakeTicker().setAutoIncrementStep(Duration.ofMillis(50));
    ExpertNode shard = ExpertNode.start(config("expert", "e0", Map.of()), clock);
    ExpertPlacementStore placements = new ExpertPlacementStore(observer.hazelcast());
    assertTrue(placed(placements, "e0"), "the shard is in the placement once started");
    watchRegistry("e0");
    HealthWatch health = new HealthWatch(shard.grpcAddress(), List.of("pdserve.expert", ""));
    List<String> phases = new CopyOnWriteArrayList<>();
    List<Boolean> placedWhileDraining = new CopyOnWriteArrayList<>();
    shard.onDrainPhase(phase -> placedWhileDraining.add(placed(placements, "e0")));
    shard.onDrainPhase(phaseRecorder(phases, shard.grpcAddress(), "e0", health));

    DrainSummary summary = shard.drainAndClose(Duration.ofSeconds(10));

    assertEquals(
        List.of(
            "DRAINING pdserve.expert=NOT_SERVING overall=SERVING registry=DRAINING",
            "CLOSING pdserve.expert=NOT_SERVING overall=SERVING registry=DRAINING"),
        phases);
    assertEquals(List.of(false, false), placedWhileDraining, "out of the placement while draining");
    health.awaitServerStopped();
    assertEquals(
        Map.of(
            "pdserve.expert", List.of("SERVING", "NOT_SERVING"),
            "", List.of("SERVING", "NOT_SERVING")),
        health.byName(),
        "health as a watcher saw it change");
    assertDeregisteredAfterDraining();
    assertEquals(0, summary.running() + summary.failed() + summary.finished(), summary.toString());
    assertTrue(
        summary.elapsedMillis() >= QuietWait.QUIET.toMillis(),
        "the drain waited for the quiet period on the node's clock: " + summary);
    assertEquals(
        List.of(
            new Closed(Stage.PRESENCE, "expert-placement"),
            new Closed(Stage.PRESENCE, "placement-pruner"),
            new Closed(Stage.PRESENCE, "registry-presence"),
            new Closed(Stage.ENDPOINTS, "grpc-server"),
            new Closed(Stage.ENDPOINTS, "metrics"),
            new Closed(Stage.RESOURCES, "expert-shard"),
            new Closed(Stage.RESOURCES, "model-weights"),
            new Closed(Stage.RESOURCES, "model"),
            new Closed(Stage.RESOURCES, "cluster-tls"),
            new Closed(Stage.CLUSTER, "node-registry"),
            new Closed(Stage.CLUSTER, "cluster-member")),
        shard.runtime().closed(),
        "what the shard closed, in order (each once): its sessions after its server, before its"
            + " weights");
    assertTrue(shard.runtime().stillOpen().isEmpty(), "still open: " + shard.runtime().stillOpen());
    assertFalse(placed(placements, "e0"), "the shard stays out of the placement");
    assertNoThreadLeftOf("e0");
  }

  private static boolean placed(ExpertPlacementStore placements, String id) {
    return placements.current().map(ExpertPlacement::shardIds).orElse(Set.of()).contains(id);
  }

  /**
   * A drain listener recording, as each phase begins, every watched health name (a Check on a fresh
   * channel) and the registry state the observer reads.
   */
  private Consumer<DrainPhase> phaseRecorder(
      List<String> phases, String address, String id, HealthWatch health) {
    return phase -> {
      try {
        StringBuilder line = new StringBuilder(phase.name());
        checks(address, health.names.toArray(String[]::new))
            .forEach(
                (name, status) ->
                    line.append(' ')
                        .append(name.isEmpty() ? "overall" : name)
                        .append('=')
                        .append(status));
        line.append(" registry=")
            .append(observed.get(id).map(n -> n.state().name()).orElse("none"));
        phases.add(line.toString());
      } catch (RuntimeException e) {
        phases.add(phase + " listener failed: " + e);
      }
    };
  }

  /** The registry entry went DRAINING, then was removed (after any ACTIVE load updates). */
  private void assertDeregisteredAfterDraining() throws InterruptedException {
    assertTrue(
        deregistered.await(BOUND.toSeconds(), TimeUnit.SECONDS),
        "the entry was never removed; states seen: " + registryStates);
    List<String> changes = new ArrayList<>();
    for (String s : registryStates) {
      if (changes.isEmpty() || !changes.get(changes.size() - 1).equals(s)) {
        changes.add(s);
      }
    }
    if (!changes.isEmpty() && changes.get(0).equals("ACTIVE")) {
      changes.remove(0); // load updates before the drain
    }
    assertEquals(List.of("DRAINING", "REMOVED"), changes, "registry entry changes");
  }

  /**
   * Every thread that appeared since the node started (the observer's aside) ends: each is joined
   * (bounded), then none may be alive.
   */
  private void assertNoThreadLeftOf(String id) throws InterruptedException {
    long deadline = System.nanoTime() + BOUND.toNanos();
    List<Thread> started = new ArrayList<>();
    for (Thread t : Thread.getAllStackTraces().keySet()) {
      if (!threadsBefore.contains(t) && !t.getName().contains("pdserve-observer") && !jvmWide(t)) {
        started.add(t);
      }
    }
    for (Thread t : started) {
      t.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime())));
    }
    List<String> alive = started.stream().filter(Thread::isAlive).map(Thread::getName).toList();
    assertEquals(List.of(), alive, "threads of node " + id + " still alive after it closed");
  }

  /** Pools the JVM keeps for everyone, which no node owns. */
  private static boolean jvmWide(Thread t) {
    return t.getName().startsWith("ForkJoinPool.commonPool-worker");
  }

  /** grpc.health.v1 Check of each name, on a fresh channel, in the order given. */
  private static Map<String, ServingStatus> checks(String address, String... names) {
    ManagedChannel ch = NettyChannelBuilder.forTarget(address).usePlaintext().build();
    try {
      Map<String, ServingStatus> out = new LinkedHashMap<>();
      for (String name : names) {
        out.put(
            name,
            HealthGrpc.newBlockingStub(ch)
                .withDeadlineAfter(10, TimeUnit.SECONDS)
                .check(HealthCheckRequest.newBuilder().setService(name).build())
                .getStatus());
      }
      return out;
    } finally {
      ch.shutdownNow();
    }
  }

  /**
   * Watches health names of a node and records each one's statuses in order. Once the overall name
   * {@code ""} reports NOT_SERVING (the server stopping) it stops watching, so the server need not
   * wait for these calls.
   */
  private static final class HealthWatch {
    final List<String> names;
    private final Map<String, List<String>> seen = new LinkedHashMap<>();
    private final ManagedChannel channel;
    private final Context.CancellableContext watching = Context.current().withCancellation();
    private final CountDownLatch started;
    private final CountDownLatch serverStopped = new CountDownLatch(1);

    HealthWatch(String address, List<String> names) throws InterruptedException {
      this.names = names;
      this.channel = NettyChannelBuilder.forTarget(address).usePlaintext().build();
      this.started = new CountDownLatch(names.size());
      for (String name : names) {
        seen.put(name, new CopyOnWriteArrayList<>());
        watching.run(() -> watch(name));
      }
      assertTrue(started.await(BOUND.toSeconds(), TimeUnit.SECONDS), "health watches started");
    }

    private void watch(String name) {
      HealthGrpc.newStub(channel)
          .watch(
              HealthCheckRequest.newBuilder().setService(name).build(),
              new StreamObserver<HealthCheckResponse>() {
                @Override
                public void onNext(HealthCheckResponse r) {
                  List<String> statuses = seen.get(name);
                  statuses.add(r.getStatus().name());
                  if (statuses.size() == 1) {
                    started.countDown();
                  }
                  if (name.isEmpty() && r.getStatus() == ServingStatus.NOT_SERVING) {
                    serverStopped.countDown();
                    watching.cancel(null);
                  }
                }

                @Override
                public void onError(Throwable t) {}

                @Override
                public void onCompleted() {}
              });
    }

    /** Waits for the overall NOT_SERVING, then closes the channel. */
    void awaitServerStopped() throws InterruptedException {
      boolean stopped = serverStopped.await(BOUND.toSeconds(), TimeUnit.SECONDS);
      watching.cancel(null);
      channel.shutdownNow();
      channel.awaitTermination(BOUND.toSeconds(), TimeUnit.SECONDS);
      assertTrue(stopped, "the overall health never went NOT_SERVING; seen: " + seen);
    }

    Map<String, List<String>> byName() {
      Map<String, List<String>> out = new LinkedHashMap<>();
      seen.forEach((name, statuses) -> out.put(name, List.copyOf(statuses)));
      return out;
    }
  }
}
