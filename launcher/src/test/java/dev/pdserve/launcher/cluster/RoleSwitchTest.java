package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.cluster.Transition;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.internal.v1.AdminServiceGrpc;
import dev.pdserve.internal.v1.SwitchRoleRequest;
import dev.pdserve.internal.v1.SwitchRoleResponse;
import dev.pdserve.launcher.Main;
import dev.pdserve.launcher.node.WorkerNode;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Dynamic role switching on a 2P/2D cluster in this JVM (real gRPC, Flight, Hazelcast, ORT):
 * switches under load keep every stream exact (decode sequences really migrate), epochs fence stale
 * actors, a role is never emptied, and the admin CLI drives it. The tests run in order: each starts
 * from the roles the one before left.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class RoleSwitchTest {
  static InJvmCluster cluster;
  static ReferenceEngine reference;
  static LoadedModel model;

  @BeforeAll
  static void start() throws Exception {
    cluster = InJvmCluster.start(2, 2);
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    reference = new ReferenceEngine(model, OrtRuntime.shared());
  }

  @AfterAll
  static void stop() {
    if (cluster != null) {
      cluster.close();
    }
    if (reference != null) {
      reference.close();
      model.close();
    }
  }

  static SwitchRoleResponse adminSwitch(String nodeId, String to, long expectedEpoch) {
    return AdminServiceGrpc.newBlockingStub(cluster.channel)
        .withDeadlineAfter(120, TimeUnit.SECONDS)
        .switchRole(
            SwitchRoleRequest.newBuilder()
                .setNodeId(nodeId)
                .setTargetRole(to)
                .setExpectedEpoch(expectedEpoch)
                .setReason("test")
                .build());
  }

  static NodeInfo entry(String id) {
    return cluster
        .router
        .directory()
        .get(id)
        .orElseThrow(() -> new AssertionError("no registry entry for " + id));
  }

  static WorkerNode worker(String id) {
    List<WorkerNode> all = new ArrayList<>(cluster.prefill);
    all.addAll(cluster.decode);
    return all.stream().filter(w -> w.id().equals(id)).findFirst().orElseThrow();
  }

  /** 32 concurrent greedy streams; returns their futures and prompts. */
  static List<CompletableFuture<InJvmCluster.Result>> launch(
      String tag, List<String> prompts, int maxTokens) {
    List<CompletableFuture<InJvmCluster.Result>> futures = new ArrayList<>();
    for (int i = 0; i < 32; i++) {
      prompts.add(tag + " stream " + i + ": " + "migrate me ".repeat(1 + i % 4));
      futures.add(
          ClusterBehaviourTest.async(
              cluster.channel, Greedy.request(tag + i, prompts.get(i), maxTokens)));
    }
    return futures;
  }

  static void assertAllExact(
      List<CompletableFuture<InJvmCluster.Result>> futures, List<String> prompts, int maxTokens)
      throws Exception {
    for (int i = 0; i < futures.size(); i++) {
      InJvmCluster.Result r = futures.get(i).get(120, TimeUnit.SECONDS);
      assertNotNull(r.completion(), "stream " + i + " ended without a completion");
      assertEquals("length", r.completion().getFinishReason(), "stream " + i);
      assertEquals(
          maxTokens,
          r.completion().getUsage().getCompletionTokens(),
          "stream " + i + " completion_tokens");
      assertArrayEquals(
          Greedy.referenceTokens(reference, prompts.get(i), maxTokens),
          r.tokenIds(),
          "stream " + i + " differs from the reference (lost, repeated or wrong tokens)");
    }
  }

  @Test
  @Order(1)
  void switchesUnderLoadKeepEveryStreamExactAndMigrateDecodeSequences() throws Exception {
    int maxTokens = 96;
    WorkerNode d0 = cluster.decode.get(0);
    WorkerNode p0 = cluster.prefill.get(0);
    long d0Epoch = entry("d0").epoch();
    long p0Epoch = entry("p0").epoch();

    // decode -> prefill while 32 streams decode: d0's running sequences move to d1.
    List<String> prompts = new ArrayList<>();
    List<CompletableFuture<InJvmCluster.Result>> streams = launch("a", prompts, maxTokens);
    InJvmCluster.await(
        Duration.ofSeconds(30),
        () -> d0.decode().stats().running() >= 4,
        "d0 to be decoding several sequences");
    SwitchRoleResponse toPrefill = adminSwitch("d0", "prefill", 0);
    assertTrue(toPrefill.getAccepted(), toPrefill.getMessage());
    assertTrue(
        toPrefill.getMigrated() >= 1,
        "at least one sequence should have migrated: " + toPrefill.getMessage());
    assertTrue(d0.decode().migrations() >= 1, "d0 counts its migrations");
    assertTrue(
        cluster.router.router().migrationsFollowed() >= 1,
        "the router followed the migrated streams");

    // prefill -> decode while another 32 streams start.
    List<String> prompts2 = new ArrayList<>();
    List<CompletableFuture<InJvmCluster.Result>> streams2 = launch("b", prompts2, 24);
    SwitchRoleResponse toDecode = adminSwitch("p0", "decode", 0);
    assertTrue(toDecode.getAccepted(), toDecode.getMessage());

    assertAllExact(streams, prompts, maxTokens);
    assertAllExact(streams2, prompts2, 24);
    cluster.awaitNoKvHeld();

    InJvmCluster.await(
        Duration.ofSeconds(10),
        () -> entry("d0").role() == NodeRole.PREFILL && entry("p0").role() == NodeRole.DECODE,
        "the router's view to show the new roles");
    NodeInfo d0Now = entry("d0");
    NodeInfo p0Now = entry("p0");
    assertEquals(NodeState.ACTIVE, d0Now.state());
    assertEquals(NodeState.ACTIVE, p0Now.state());
    assertEquals(
        d0Epoch + 3,
        d0Now.epoch(),
        "ACTIVE->DRAINING->SWITCHING->ACTIVE bumps the epoch three times");
    assertEquals(p0Epoch + 3, p0Now.epoch());
    assertEquals(toPrefill.getEpoch(), d0Now.epoch());
    assertEquals(1, d0.switcher().switches());
    assertEquals(NodeRole.DECODE, p0.role());

    // The new roles serve: requests after the switches are exact too.
    List<String> prompts3 = new ArrayList<>();
    List<CompletableFuture<InJvmCluster.Result>> streams3 = launch("c", prompts3, 8);
    assertAllExact(streams3, prompts3, 8);
    cluster.awaitNoKvHeld();
    assertTrue(
        d0.prefill().stats().completed() > 0 || p0.decode().stats().steps() > 0,
        "the switched nodes took work in their new roles");
  }

  @Test
  @Order(2)
  void aStaleEpochIsRefusedAndChangesNothing() {
    // An actor reads d1 at epoch E; meanwhile d1 switches away and back. E is now stale.
    long seen = entry("d1").epoch();
    assertTrue(adminSwitch("d1", "prefill", seen).getAccepted());
    assertTrue(adminSwitch("d1", "decode", 0).getAccepted());
    InJvmCluster.await(
        Duration.ofSeconds(10),
        () -> entry("d1").epoch() == seen + 6 && entry("d1").role() == NodeRole.DECODE,
        "the router's view of d1 to catch up");
    NodeInfo before = entry("d1");
    try (NodeRegistry registry = new NodeRegistry(worker("d1").member().hazelcast())) {
      Transition stale =
          registry.compareAndSet(
              "d1", seen, NodeState.ACTIVE, NodeRole.PREFILL, NodeState.DRAINING);
      assertEquals(Transition.Outcome.STALE_EPOCH, stale.outcome());
      assertEquals(before.epoch(), stale.epoch());
    }
    SwitchRoleResponse r = adminSwitch("d1", "prefill", seen);
    assertFalse(r.getAccepted(), "a switch from an old view must be refused");
    assertTrue(r.getMessage().contains("stale"), r.getMessage());
    NodeInfo after = entry("d1");
    assertEquals(before.epoch(), after.epoch());
    assertEquals(NodeRole.DECODE, after.role());
    assertEquals(NodeState.ACTIVE, after.state());
  }

  @Test
  @Order(3)
  void aSwitchThatWouldEmptyARoleIsRefused() {
    // Roles now: prefill d0, p1; decode p0, d1. Make d1 prefill, then p0 is the last decode node.
    assertTrue(adminSwitch("d1", "prefill", 0).getAccepted());
    SwitchRoleResponse r = adminSwitch("p0", "prefill", 0);
    assertFalse(r.getAccepted());
    assertTrue(r.getMessage().contains("only ACTIVE decode node"), r.getMessage());
    assertEquals(NodeRole.DECODE, entry("p0").role());
    assertEquals(NodeState.ACTIVE, entry("p0").state());
    assertTrue(adminSwitch("d1", "decode", 0).getAccepted(), "switching back works");
  }

  record Cli(int code, String out, String err) {}

  static Cli cli(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Main.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
    return new Cli(code, out.toString(), err.toString());
  }

  @Test
  @Order(4)
  void adminCliShowsStatusAndSwitchesRoles() throws Exception {
    String router = cluster.router.grpcAddress();
    Cli status = cli("admin", "status", "--router", router, "--json");
    assertEquals(0, status.code(), status.err());
    JsonNode nodes = new ObjectMapper().readTree(status.out());
    assertTrue(nodes.isArray());
    JsonNode d1 = null;
    for (JsonNode n : nodes) {
      for (String field :
          List.of(
              "id",
              "role",
              "state",
              "epoch",
              "coordinator",
              "kv_free_blocks",
              "metrics_url",
              "http_url")) {
        assertTrue(n.has(field), "node object lacks " + field + ": " + n);
      }
      if (n.get("id").asText().equals("d1")) {
        d1 = n;
      }
    }
    assertNotNull(d1, status.out());
    assertEquals("decode", d1.get("role").asText());
    assertEquals("ACTIVE", d1.get("state").asText());
    assertEquals(entry("d1").epoch(), d1.get("epoch").asLong());

    Cli sw = cli("admin", "switch", "d1", "--to", "prefill", "--router", router);
    assertEquals(0, sw.code(), sw.err());
    assertTrue(sw.out().contains("switched decode -> prefill"), sw.out());
    assertEquals(NodeRole.PREFILL, worker("d1").role());

    Cli refused = cli("admin", "switch", "p0", "--to", "prefill", "--router", router);
    assertEquals(1, refused.code(), refused.out());
    assertTrue(
        refused.err().contains("refused") && refused.err().contains("only ACTIVE decode node"),
        refused.err());

    Cli unknown = cli("admin", "switch", "nope", "--to", "decode", "--router", router);
    assertEquals(1, unknown.code());
    assertTrue(
        unknown.err().contains("NOT_FOUND") && unknown.err().contains("nope"), unknown.err());

    Cli badRole = cli("admin", "switch", "d1", "--to", "router", "--router", router);
    assertEquals(2, badRole.code());
    assertTrue(badRole.err().contains("--to"), badRole.err());

    Cli table = cli("admin", "status", "--router", router);
    assertEquals(0, table.code(), table.err());
    assertTrue(
        table.out().contains("d1") && table.out().contains("coordinator: none"), table.out());
    assertEquals(0, cli("admin", "switch", "d1", "--to", "decode", "--router", router).code());
  }
}
