package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.core.cluster.ExpertPlacementStore;
import dev.pdserve.launcher.node.ExpertNode;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.router.RouterOptions;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * An expert shard without a replica dies (no drain: its member vanishes): requests that need its
 * experts fail with UNAVAILABLE naming them, the placement drops the shard, and once a shard for
 * those experts is back the same workers serve the reference tokens again.
 */
class ExpertShardLossTest {
  InJvmCluster cluster;
  LoadedModel model;
  ReferenceEngine reference;

  @BeforeEach
  void start() throws Exception {
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    reference = new ReferenceEngine(model, OrtRuntime.shared());
    cluster = new InJvmCluster();
    cluster.addShard("0-31");
    cluster.addShard("32-63");
    Map<String, String> remote = Map.of("experts.mode", "remote");
    cluster.addWorker("decode", remote);
    cluster.addWorker("prefill", remote);
    cluster.startRouter(RouterOptions.defaults());
    cluster.awaitRouterSees(1, 1);
  }

  @AfterEach
  void stop() {
    if (cluster != null) {
      cluster.close();
    }
    if (reference != null) {
      reference.close();
    }
    if (model != null) {
      model.close();
    }
  }

  ExpertPlacement placement() {
    return new ExpertPlacementStore(cluster.decode.get(0).member().hazelcast())
        .current()
        .orElseThrow(() -> new AssertionError("no expert placement published"));
  }

  void assertReference(GenerateRequest r) {
    InJvmCluster.Result got = cluster.generate(r);
    assertNotNull(got.completion(), r.getRequestId());
    assertArrayEquals(
        ClusterMatchesReferenceTest.expected(reference, r),
        got.tokenIds(),
        r.getRequestId() + " differs from the reference");
  }

  @Test
  void aLostShardsExpertsAreUnavailableByNameUntilAShardForThemIsBack() throws Exception {
    assertReference(Greedy.request("before", "experts on two shards", 24));
    ExpertNode e1 = (ExpertNode) cluster.shards.get(1);
    assertEquals("e1", e1.id());

    e1.crash();
    InJvmCluster.await(
        Duration.ofSeconds(30),
        () -> !placement().shardIds().contains("e1"),
        "the crashed shard to leave the placement");
    assertFalse(placement().covers(model.config()), "its experts have no shard now");

    StatusRuntimeException lost =
        assertThrows(
            StatusRuntimeException.class,
            () -> cluster.generate(Greedy.request("lost", "experts on two shards", 24)));
    String m = lost.getStatus().getDescription();
    assertEquals(Status.Code.UNAVAILABLE, lost.getStatus().getCode(), m);
    assertTrue(
        m.matches(
            ".*experts? [0-9, ]+( and \\d+ more)? of layer \\d+ ha(s|ve) no live shard \\(shard e1 .*"),
        m);
    assertFalse(m.contains("Exception"), "no class name: " + m);
    assertFalse(m.contains("lost its decode node"), "not taken for a decode node's loss: " + m);
    cluster.awaitNoKvHeld();

    // The shard restarts (same id, a new process and address): the same workers serve again.
    ExpertNode back = cluster.addShard("e1", Map.of("expert.range", "32-63"));
    InJvmCluster.await(
        Duration.ofSeconds(30),
        () -> placement().covers(model.config()),
        "the restarted shard to cover its experts again");
    assertTrue(placement().shardIds().contains(back.id()));
    assertReference(Greedy.request("after", "experts on two shards", 24));
    assertReference(Greedy.request("lost", "experts on two shards", 24)); // retried
    cluster.awaitNoKvHeld();
  }
}
