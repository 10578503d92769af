package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.api.v1.Completion;
import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.launcher.cluster.DecodeNodeCrashTest.WatchedStream;
import dev.pdserve.launcher.node.WorkerNode;
import dev.pdserve.model.engine.FailingExperts;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.router.RouterMetrics;
import dev.pdserve.router.RouterOptions;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * A prefill node whose step loop dies of an Error loses no request (issue 14): on a cluster of one
 * decode node and prefill node p0, three requests queue on p0 while its first step is held inside
 * the experts ({@link FailingExperts}); a second prefill node p1 joins; then p0's step throws an
 * OutOfMemoryError ("Direct buffer memory", as seen in a bench run, where the requests then hung
 * for minutes). p0 fails all three with UNAVAILABLE, the router computes them again on p1, and each
 * ends with the reference engine's tokens; p0 frees its KV, refuses new prompts, reports
 * NOT_SERVING on every health name and is no ACTIVE prefill node in the router's view any more.
 */
class PrefillLoopDeathTest {
  private static final int MAX_TOKENS = 12;
  private static final int REQUESTS = 3;
  private static final Duration HANG_GUARD = Duration.ofSeconds(120);

  @Test
  void requestsOfAPrefillNodeWhoseLoopDiesFinishOnAnotherAndTheNodeLeaves() throws Exception {
    AtomicReference<FailingExperts> failing = new AtomicReference<>();
    try (LoadedModel model = LoadedModel.load(ModelSpec.preset("tiny"));
        ReferenceEngine reference = new ReferenceEngine(model, OrtRuntime.shared());
        InJvmCluster cluster = new InJvmCluster()) {
      cluster.set("router.local-prefill-threshold", "0"); // every prompt goes to a prefill node
      cluster.addWorker("decode", Map.of("experts.mode", "local"));
      WorkerNode p0 =
          WorkerNode.start(
              cluster.config("prefill", "p0", Map.of("experts.mode", "local")),
              cluster.allocator,
              WorkerNode.ExpertBackendFactory.fromConfig()
                  .andThen(
                      b -> {
                        FailingExperts f = new FailingExperts(b);
                        failing.set(f);
                        return f;
                      }));
      cluster.prefill.add(p0);
      cluster.startRouter(RouterOptions.defaults());
      cluster.awaitRouterSees(1, 1);

      failing.get().failNextCall(new OutOfMemoryError("Direct buffer memory"));
      List<GenerateRequest> requests = new ArrayList<>();
      List<WatchedStream> streams = new ArrayList<>();
      for (int i = 0; i < REQUESTS; i++) {
        GenerateRequest r =
            Greedy.request("loop" + i, "prompt " + i + " outlives its prefill node", MAX_TOKENS);
        requests.add(r);
        streams.add(WatchedStream.start(cluster.channel, r));
      }
      failing.get().awaitHeld(HANG_GUARD); // p0's first step is under way
      InJvmCluster.await(
          HANG_GUARD,
          () -> p0.prefill().stats().queuedJobs() == REQUESTS,
          "p0 to hold all " + REQUESTS + " prompts");
      cluster.addWorker("prefill", Map.of("experts.mode", "local")); // p1
      cluster.awaitRouterSees(2, 1);
      failing.get().release(); // p0's step throws OutOfMemoryError: its loop dies

      for (int i = 0; i < REQUESTS; i++) {
        WatchedStream s = streams.get(i);
        String id = requests.get(i).getRequestId();
        Completion c = s.completion().get(HANG_GUARD.toSeconds(), TimeUnit.SECONDS);
        assertNull(s.error(), id + " failed: " + s.error());
        assertNotNull(c, id + " ended without a completion");
        assertArrayEquals(
            Greedy.referenceTokens(reference, requests.get(i).getPrompt(), MAX_TOKENS),
            s.tokenIds(),
            id + " differs from the reference engine");
      }
      assertEquals(
          REQUESTS,
          DecodeNodeCrashTest.routerCounter(
              cluster,
              "pdserve_request_migrations_total",
              RouterMetrics.MIGRATION_PREFILL_NODE_LOST),
          "each request was computed again once, because p0 failed it");
      assertTrue(
          cluster.prefill.get(1).prefill().stats().completed() >= REQUESTS, "p1 prefilled them");

      assertTrue(p0.outOfService(), "p0 took itself out of service");
      InJvmCluster.await(
          HANG_GUARD,
          () ->
              cluster.router.directory().active(NodeRole.PREFILL).stream()
                  .noneMatch(n -> n.id().equals("p0")),
          "the router to stop seeing p0 as an ACTIVE prefill node");
      assertEquals(
          NodeState.DRAINING,
          cluster.router.directory().get("p0").map(n -> n.state()).orElse(null),
          "p0's registry entry");
      for (String service : List.of("", NodeRole.WORKER_HEALTH_SERVICE, "pdserve.prefill")) {
        assertEquals(
            ServingStatus.NOT_SERVING,
            GracefulDrainTest.health(p0.grpcAddress(), service),
            "health '" + service + "' of p0");
      }
      assertFalse(p0.prefill().accepting(), "p0 refuses new prompts");
      assertEquals(0, p0.prefill().stats().queuedJobs(), "p0 holds no prompt");
      cluster.awaitNoKvHeld(); // p0's pool too: the prompts it held gave their blocks back
    }
  }
}
