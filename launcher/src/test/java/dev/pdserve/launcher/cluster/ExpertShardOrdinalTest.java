package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.core.cluster.ExpertPlacementStore;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.config.ExpertRange;
import dev.pdserve.launcher.node.DrainPhase;
import dev.pdserve.launcher.node.DrainSummary;
import dev.pdserve.launcher.node.ExpertNode;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.router.RouterOptions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Expert shards that share their settings, as the pods of one Kubernetes StatefulSet do: {@code
 * pdserve.expert.shard-count=2} and node ids {@code pdserve-experts-<ordinal>} split the experts
 * between them by ordinal; a request through the cluster (1P/1D, experts remote) equals the
 * single-process reference engine. A third pod (ordinal 2) replicates the first range and drains
 * out of the placement while requests run, which stay exact.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ExpertShardOrdinalTest {
  static InJvmCluster cluster;
  static LoadedModel model;
  static ReferenceEngine reference;
  static ExpertNode e0;
  static ExpertNode e1;

  @BeforeAll
  static void start() throws Exception {
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    reference = new ReferenceEngine(model, OrtRuntime.shared());
    cluster = new InJvmCluster();
    try {
      e0 = cluster.addShard("pdserve-experts-0", Map.of("expert.shard-count", "2"));
      e1 = cluster.addShard("pdserve-experts-1", Map.of("expert.shard-count", "2"));
      Map<String, String> remote = Map.of("experts.mode", "remote");
      cluster.addWorker("decode", remote);
      cluster.addWorker("prefill", remote);
      cluster.startRouter(RouterOptions.defaults());
      cluster.awaitRouterSees(1, 1);
    } catch (Exception | Error e) {
      cluster.close();
      throw e;
    }
  }

  @AfterAll
  static void stop() {
    if (cluster != null) {
      cluster.close();
    }
    reference.close();
    model.close();
  }

  static ExpertPlacement placement() {
    return new ExpertPlacementStore(cluster.decode.get(0).member().hazelcast())
        .current()
        .orElseThrow(() -> new AssertionError("no expert placement published"));
  }

  static void assertExact(List<GenerateRequest> requests) throws Exception {
    List<CompletableFuture<InJvmCluster.Result>> running = new ArrayList<>();
    for (GenerateRequest r : requests) {
      running.add(ClusterBehaviourTest.async(cluster.channel, r));
    }
    for (int i = 0; i < requests.size(); i++) {
      InJvmCluster.Result got = running.get(i).get(120, TimeUnit.SECONDS);
      assertNotNull(got.completion(), requests.get(i).getRequestId());
      assertArrayEquals(
          ClusterMatchesReferenceTest.expected(reference, requests.get(i)),
          got.tokenIds(),
          requests.get(i).getRequestId() + " differs from the reference");
    }
  }

  @Test
  @Order(1)
  void statefulSetOrdinalsSplitTheExpertsAndTogetherServeLikeTheReference() throws Exception {
    assertEquals(new ExpertRange(0, 31), e0.range(), "ordinal 0 of 2 shards");
    assertEquals(new ExpertRange(32, 63), e1.range(), "ordinal 1 of 2 shards");
    ExpertPlacement p = placement();
    ModelConfig cfg = model.config();
    int placed = 0;
    for (int layer = 0; layer < cfg.numLayers(); layer++) {
      for (int group : cfg.groupsInLayer(layer)) {
        for (int e = 0; e < cfg.expertGroups().get(group).numExperts(); e++) {
          assertEquals(
              List.of(e < 32 ? e0.id() : e1.id()),
              p.shardsFor(layer, group, e),
              "hosts of expert " + e + " of group " + group + " in layer " + layer);
          placed++;
        }
      }
    }
    assertTrue(placed > 0, "the model has routed experts");
    assertExact(ClusterMatchesReferenceTest.prompts());
    cluster.awaitNoKvHeld();
  }

  @Test
  @Order(2)
  void aDrainedReplicaLeavesThePlacementWhileRequestsStayExact() throws Exception {
    ExpertNode e2 = addReplicaOfShard0();
    List<GenerateRequest> requests = requests("replica", "experts elsewhere ");
    List<String> seen = new CopyOnWriteArrayList<>();
    e2.onDrainPhase(
        phase -> {
          if (phase == DrainPhase.DRAINING) {
            try {
              String a = e2.grpcAddress();
              seen.add("expert=" + GracefulDrainTest.health(a, "pdserve.expert"));
              seen.add("overall=" + GracefulDrainTest.health(a, ""));
              seen.add("placed=" + placement().shardIds().contains(e2.id()));
            } catch (RuntimeException ex) {
              seen.add("listener failed: " + ex);
            }
          }
        });
    CompletableFuture<Void> load = exactInBackground(requests);
    DrainSummary summary = e2.drainAndClose(Duration.ofSeconds(10));
    load.get(120, TimeUnit.SECONDS);

    assertEquals(
        List.of("expert=NOT_SERVING", "overall=SERVING", "placed=false"),
        seen,
        "while the shard drains");
    assertEquals(0, summary.failed(), summary.toString());
    assertFalse(placement().shardIds().contains(e2.id()));
    try (NodeRegistry registry = new NodeRegistry(e0.member().hazelcast())) {
      assertTrue(registry.get(e2.id()).isEmpty(), "the drained shard deregistered");
    }
    assertExact(requests.subList(0, 2));
    cluster.awaitNoKvHeld();
  }

  @Test
  @Order(3)
  void aCrashedReplicaCostsNoRequestAndLeavesThePlacement() throws Exception {
    // A pod killed without a drain (OOM, lost node): its Hazelcast member vanishes, it never
    // withdraws from the placement. Workers route its experts to the other replica, and the
    // others take it out of the placement once its member left.
    ExpertNode e3 = addReplicaOfShard0();
    List<GenerateRequest> requests = requests("crash", "a shard dies ");
    e3.member().hazelcast().getLifecycleService().terminate(); // no graceful leave
    CompletableFuture<Void> load = exactInBackground(requests);
    e3.close(); // its gRPC server goes away; withdrawing fails without its Hazelcast member
    load.get(120, TimeUnit.SECONDS);
    InJvmCluster.await(
        Duration.ofSeconds(30),
        () -> !placement().shardIds().contains(e3.id()),
        "the crashed shard to leave the placement");
    assertExact(requests.subList(0, 2));
    cluster.awaitNoKvHeld();
  }

  /** A third pod of the StatefulSet (ordinal 2 of 2 ranges): a replica of shard 0's experts. */
  static ExpertNode addReplicaOfShard0() throws Exception {
    ExpertNode e = cluster.addShard("pdserve-experts-2", Map.of("expert.shard-count", "2"));
    assertEquals(new ExpertRange(0, 31), e.range(), "ordinal 2 of 2 shards replicates shard 0");
    InJvmCluster.await(
        Duration.ofSeconds(10),
        () -> placement().shardsFor(1, 0, 0).contains(e.id()),
        "the placement to list the replica");
    return e;
  }

  /** Six greedy 48-token requests. */
  static List<GenerateRequest> requests(String idPrefix, String promptPrefix) {
    List<GenerateRequest> out = new ArrayList<>();
    for (int i = 0; i < 6; i++) {
      out.add(Greedy.request(idPrefix + i, promptPrefix + i, 48));
    }
    return out;
  }

  /** Runs {@link #assertExact} on another thread. */
  static CompletableFuture<Void> exactInBackground(List<GenerateRequest> requests) {
    return CompletableFuture.runAsync(
        () -> {
          try {
            assertExact(requests);
          } catch (Exception ex) {
            throw new CompletionException(ex);
          }
        });
  }
}
