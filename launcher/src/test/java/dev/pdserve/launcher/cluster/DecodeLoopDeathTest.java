package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
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
 * A decode node whose step loop dies of an Error mid-stream loses no stream (issue 14): on 1P/2D,
 * three streams decode on d0 while d1 stands by; then a decode step on d0 throws an
 * OutOfMemoryError inside the experts ({@link FailingExperts}). d0 fails every stream with
 * UNAVAILABLE and frees their KV; the router continues each on d1 (the prompt and the tokens
 * already sent prefilled again), so each ends with the reference engine's tokens, none lost or
 * repeated; d0 reports NOT_SERVING and is no ACTIVE decode node in the router's view any more.
 */
class DecodeLoopDeathTest {
  private static final int MAX_TOKENS = 200;
  private static final int TOKENS_BEFORE = 8;
  private static final int REQUESTS = 3;
  private static final Duration HANG_GUARD = Duration.ofSeconds(120);

  @Test
  void streamsOfADecodeNodeWhoseLoopDiesFinishExactlyOnTheOtherAndTheNodeLeaves() throws Exception {
    AtomicReference<FailingExperts> failing = new AtomicReference<>();
    try (LoadedModel model = LoadedModel.load(ModelSpec.preset("tiny"));
        ReferenceEngine reference = new ReferenceEngine(model, OrtRuntime.shared());
        InJvmCluster cluster = new InJvmCluster()) {
      cluster.addWorker("prefill", Map.of("experts.mode", "local")); // the Hazelcast seed
      WorkerNode d0 =
          WorkerNode.start(
              cluster.config("decode", "d0", Map.of("experts.mode", "local")),
              cluster.allocator,
              WorkerNode.ExpertBackendFactory.fromConfig()
                  .andThen(
                      b -> {
                        FailingExperts f = new FailingExperts(b);
                        failing.set(f);
                        return f;
                      }));
      cluster.decode.add(d0);
      WorkerNode d1 = cluster.addWorker("decode", Map.of("experts.mode", "local"));
      cluster.startRouter(RouterOptions.defaults());
      cluster.awaitRouterSees(1, 2);
      d1.decode().setAccepting(false); // every stream starts on d0

      List<GenerateRequest> requests = new ArrayList<>();
      List<WatchedStream> streams = new ArrayList<>();
      for (int i = 0; i < REQUESTS; i++) {
        GenerateRequest r =
            Greedy.request("dloop" + i, "stream " + i + " outlives its decode loop", MAX_TOKENS);
        requests.add(r);
        streams.add(WatchedStream.start(cluster.channel, r));
      }
      for (WatchedStream s : streams) {
        s.tokensReached(TOKENS_BEFORE).get(HANG_GUARD.toSeconds(), TimeUnit.SECONDS);
      }
      assertEquals(REQUESTS, d0.decode().stats().running(), "every stream is on d0");
      d1.decode().setAccepting(true);
      failing.get().failNextCall(new OutOfMemoryError("Direct buffer memory"));
      failing.get().awaitHeld(HANG_GUARD); // d0's next decode step is under way
      List<Integer> before = new ArrayList<>();
      for (WatchedStream s : streams) {
        before.add(s.tokenCount());
      }
      failing.get().release(); // the step throws: d0's decode loop dies

      for (int i = 0; i < REQUESTS; i++) {
        WatchedStream s = streams.get(i);
        String id = requests.get(i).getRequestId();
        Completion c = s.completion().get(HANG_GUARD.toSeconds(), TimeUnit.SECONDS);
        assertNull(s.error(), id + " failed: " + s.error());
        assertNotNull(c, id + " ended without a completion");
        assertEquals(MAX_TOKENS, c.getUsage().getCompletionTokens(), id);
        assertArrayEquals(
            Greedy.referenceTokens(reference, requests.get(i).getPrompt(), MAX_TOKENS),
            s.tokenIds(),
            id + " differs from the reference engine (a token lost or repeated)");
        assertTrue(before.get(i) < MAX_TOKENS, id + " had finished before d0's loop died");
      }
      assertEquals(
          REQUESTS,
          DecodeNodeCrashTest.routerCounter(
              cluster,
              "pdserve_request_migrations_total",
              RouterMetrics.MIGRATION_DECODE_NODE_LOST),
          "each stream moved once, because d0 failed it");
      assertTrue(d1.decode().stats().tokens() >= REQUESTS, "d1 decoded the rest");

      assertTrue(d0.outOfService(), "d0 took itself out of service");
      InJvmCluster.await(
          HANG_GUARD,
          () ->
              cluster.router.directory().active(NodeRole.DECODE).stream()
                  .noneMatch(n -> n.id().equals("d0")),
          "the router to stop seeing d0 as an ACTIVE decode node");
      assertEquals(
          NodeState.DRAINING,
          cluster.router.directory().get("d0").map(n -> n.state()).orElse(null),
          "d0's registry entry");
      for (String service : List.of("", NodeRole.WORKER_HEALTH_SERVICE, "pdserve.decode")) {
        assertEquals(
            ServingStatus.NOT_SERVING,
            GracefulDrainTest.health(d0.grpcAddress(), service),
            "health '" + service + "' of d0");
      }
      assertEquals(0, d0.decode().reservedBlocks(), "d0 holds no reservation");
      cluster.awaitNoKvHeld();
    }
  }
}
