package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.launcher.node.DrainSummary;
import dev.pdserve.launcher.node.WorkerNode;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Test;

/**
 * A sequence moved to another decode node keeps its KV lease alive there: the router renews the
 * target's reservation as it did the first one. With a 1 s lease, streams that run on for seconds
 * after their node drained (migrating at once) complete exactly and the target lets no lease run
 * out (before the fix, the router never renewed a moved sequence's lease and the target cancelled
 * it a lease after the move).
 */
class MigrationLeaseTest {
  @Test
  void movedSequencesOutliveTheLeaseOnTheirNewNode() throws Exception {
    try (LoadedModel model = LoadedModel.load(ModelSpec.preset("tiny"));
        ReferenceEngine reference = new ReferenceEngine(model, OrtRuntime.shared());
        InJvmCluster cluster = InJvmCluster.start(1, 2, 0, Map.of("kv.lease-seconds", "1"))) {
      int maxTokens = 900;
      List<String> prompts = new ArrayList<>();
      List<CompletableFuture<InJvmCluster.Result>> streams = new ArrayList<>();
      for (int i = 0; i < 3; i++) {
        prompts.add("lease " + i + ": keep me alive");
        GenerateRequest r = Greedy.request("lease" + i, prompts.get(i), maxTokens);
        streams.add(ClusterBehaviourTest.async(cluster.channel, r));
      }
      InJvmCluster.await(
          Duration.ofSeconds(60),
          () -> cluster.decode.stream().anyMatch(w -> w.decode().stats().running() > 0),
          "a decode node running the streams");
      WorkerNode busy =
          cluster.decode.stream()
              .filter(w -> w.decode().stats().running() > 0)
              .findFirst()
              .orElseThrow();
      WorkerNode other = cluster.decode.get(cluster.decode.get(0) == busy ? 1 : 0);
      DrainSummary s = busy.drainAndClose(Duration.ofSeconds(20), Duration.ZERO);
      assertTrue(s.migrated() > 0, "the drain moved sequences: " + s);
      assertEquals(0, s.failed(), s.toString());
      for (int i = 0; i < streams.size(); i++) {
        InJvmCluster.Result got = streams.get(i).get(120, TimeUnit.SECONDS);
        assertNotNull(got.completion(), "lease" + i + " ended without a completion");
        assertArrayEquals(
            Greedy.referenceTokens(reference, prompts.get(i), maxTokens),
            got.tokenIds(),
            "lease" + i + " differs from the reference");
      }
      assertEquals(
          0, other.decode().leasesExpired(), "no lease ran out on the node that took the streams");
      cluster.decode.remove(busy);
      cluster.awaitNoKvHeld();
    }
  }

  @Test
  void aSequenceTheDecodeNodeCutsIsAnErrorNotAShortAnswer() throws Exception {
    try (InJvmCluster cluster = InJvmCluster.start(1, 1)) {
      CompletableFuture<InJvmCluster.Result> stream =
          ClusterBehaviourTest.async(cluster.channel, Greedy.request("cut", "cut me short", 900));
      WorkerNode d = cluster.decode.get(0);
      InJvmCluster.await(
          Duration.ofSeconds(60), () -> d.decode().stats().running() > 0, "the stream decoding");
      assertTrue(d.decode().cancel("cut"), "the decode node holds the request");
      ExecutionException e =
          Assertions.assertThrows(
              ExecutionException.class,
              () -> stream.get(60, TimeUnit.SECONDS),
              "a stream the decode node cut must not end as a completion");
      StatusRuntimeException s = (StatusRuntimeException) e.getCause();
      assertEquals(Status.Code.UNAVAILABLE, s.getStatus().getCode(), s.toString());
      assertTrue(
          s.getStatus().getDescription().contains("ended request cut")
              && s.getStatus().getDescription().contains("retry the request"),
          s.getStatus().getDescription());
      cluster.awaitNoKvHeld();
    }
  }
}
