package dev.pdserve.expert;

import static dev.pdserve.expert.TinyModel.CFG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.testing.FakeTicker;
import dev.pdserve.core.config.ExpertRange;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.experts.RemoteExperts;
import dev.pdserve.core.grpc.GrpcServer;
import dev.pdserve.expert.grpc.ExpertShardServer;
import dev.pdserve.internal.v1.NodeServiceGrpc;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.internal.v1.StatusRequest;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.LocalExperts;
import dev.pdserve.model.engine.RoutedBatch;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelWeights;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class ExpertShardServerTest {
  static ModelWeights weights;
  ShardCluster cluster;

  @BeforeAll
  static void setUp() {
    weights = new ModelWeights(CFG, new DummyWeights(CFG, TinyModel.SEED), OrtRuntime.shared());
  }

  @AfterAll
  static void tearDown() {
    weights.close();
  }

  @AfterEach
  void closeCluster() {
    if (cluster != null) {
      cluster.close();
    }
  }

  @Test
  void statusAndHealthReportTheShard() {
    cluster = ShardCluster.start(weights, Map.of("shard-a", "0-31", "shard-b", "32-63"));
    RemoteExperts remote = cluster.remote();
    Random rnd = new Random(21);
    for (int i = 0; i < 5; i++) {
      remote.routed(TinyModel.randomBatch(rnd, 1 + i % 3, 10, Integer.MAX_VALUE));
    }
    ExpertShard a = cluster.shard("shard-a");
    assertEquals(5, a.stats().dispatches());
    assertEquals(remote.metrics().shard("shard-a").rows(), a.stats().rows());
    assertEquals(remote.metrics().shard("shard-a").tokens(), a.stats().tokens());
    assertTrue(a.stats().expertsRun() > 5);

    var channel = cluster.channels.get(cluster.addresses.get("shard-a"));
    NodeStatus st =
        NodeServiceGrpc.newBlockingStub(channel).status(StatusRequest.getDefaultInstance());
    assertEquals("shard-a", st.getId());
    assertEquals("EXPERT", st.getRole());
    assertTrue(
        st.getExperts()
            .startsWith(
                "shard shard-a hosts experts 0-31 (text, vision) of every MoE layer; dispatches=5 rows="),
        st.getExperts());
    assertTrue(st.getExperts().contains("; hottest: L"), st.getExperts());

    var health = HealthGrpc.newBlockingStub(channel);
    assertEquals(
        ServingStatus.SERVING,
        health
            .check(HealthCheckRequest.newBuilder().setService("pdserve.expert").build())
            .getStatus());
  }

  @Test
  void dispatchesPastGrpcsDefaultMessageSizeGoThrough() {
    cluster = ShardCluster.start(weights, Map.of("shard-a", "0-31", "shard-b", "32-63"));
    // 9,000 rows: each shard answers with ~9000 × 64 × 8 B = 4.4 MiB of partials, past the 4 MiB
    // default
    RoutedBatch big = TinyModel.randomBatch(new Random(22), 1, 9_000, Integer.MAX_VALUE);
    try (ExpertCompute all =
        new ExpertCompute(CFG, weights, OrtRuntime.shared(), ExpertCompute.HostedExperts.ALL)) {
      float[] expected = new LocalExperts(all).routed(big);
      RemoteExperts remote = cluster.remote();
      assertNull(TinyModel.firstDifference(expected, remote.routed(big), CFG.hidden()));
      assertTrue(remote.metrics().shard("shard-a").rows() > 8_000);
    }
  }

  @Test
  void aShardIsBuiltFromNodeConfig() {
    NodeConfig node =
        NodeConfigLoader.fromMap(
            Map.of("role", "expert", "node.id", "e-7", "expert.range", "32-63"));
    try (ExpertShard s = ExpertShard.forNode(node, weights, OrtRuntime.shared())) {
      assertEquals("e-7", s.id());
      assertEquals(new ExpertRange(32, 63), s.range());
      assertTrue(s.hosts(1, 1, 40));
      assertTrue(!s.hosts(1, 1, 31));
      assertTrue(!s.hosts(0, 0, 40), "layer 0 is dense");
    }
    NodeConfig all = NodeConfigLoader.fromMap(Map.of("role", "expert", "node.id", "e-8"));
    try (ExpertShard s = ExpertShard.forNode(all, weights, OrtRuntime.shared())) {
      assertEquals(new ExpertRange(0, 63), s.range());
    }
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> new ExpertShard("x", new ExpertRange(64, 70), weights, OrtRuntime.shared()));
    assertEquals(
        "expert range 64-70 of shard x is outside every expert group of tiny (largest has 64 experts)",
        e.getMessage());
  }

  @Test
  void aShardIsQuietOnlyWhenNothingRunsAndNothingArrivedForTheQuietTimeByItsTicker() {
    Duration quiet = Duration.ofMillis(200);
    FakeTicker ticker = new FakeTicker();
    AtomicReference<ExpertShard> shard = new AtomicReference<>();
    AtomicReference<Duration> dispatchTakes = new AtomicReference<>(Duration.ofHours(1));
    List<Boolean> quietWhileComputing = new ArrayList<>();
    ExpertShardMetrics duringDispatch =
        new ExpertShardMetrics() {
          @Override
          public void computed(int rows, int tokens, long nanos) {
            ticker.advance(dispatchTakes.get());
            quietWhileComputing.add(shard.get().quietFor(quiet));
          }
        };
    try (ExpertShard s =
        new ExpertShard(
            "quiet",
            new ExpertRange(0, 63),
            weights,
            OrtRuntime.shared(),
            duringDispatch,
            ticker)) {
      shard.set(s);
      assertTrue(s.quietFor(quiet), "a shard that never had a dispatch is quiet");

      s.compute(TinyModel.randomBatch(new Random(24), 1, 4, Integer.MAX_VALUE));
      assertEquals(
          List.of(false), quietWhileComputing, "an hour into a running dispatch, it was quiet");
      assertTrue(s.quietFor(quiet), "an hour after the last dispatch arrived, it is not quiet");

      dispatchTakes.set(Duration.ZERO);
      s.compute(TinyModel.randomBatch(new Random(25), 1, 4, Integer.MAX_VALUE));
      assertFalse(s.quietFor(quiet), "quiet although a dispatch has just arrived");
      ticker.advance(quiet.minusNanos(1));
      assertFalse(s.quietFor(quiet), "quiet a nanosecond before the quiet time is up");
      ticker.advance(Duration.ofNanos(1));
      assertTrue(s.quietFor(quiet), "not quiet once the quiet time is up");
    }
  }

  @Test
  void closingLeavesNoHandlerOrClientThreads() throws InterruptedException {
    cluster = ShardCluster.start(weights, Map.of("shard-a", "0-31", "shard-b", "32-63"));
    cluster.remote().routed(TinyModel.randomBatch(new Random(23), 1, 4, Integer.MAX_VALUE));
    assertTrue(!ours().isEmpty(), "servers and channels run named threads");
    cluster.close();
    cluster = null;
    long deadline = System.nanoTime() + 5_000_000_000L;
    while (!ours().isEmpty() && System.nanoTime() < deadline) {
      Thread.sleep(20);
    }
    assertEquals(Set.of(), ours(), "threads left after close");
  }

  private static Set<String> ours() {
    return Thread.getAllStackTraces().keySet().stream()
        .filter(Thread::isAlive)
        .map(Thread::getName)
        .filter(n -> n.startsWith("grpc-expert-") || n.startsWith("grpc-client-"))
        .collect(Collectors.toSet());
  }

  @Test
  void theServerTakesAnyBuilder() throws Exception {
    try (ExpertShard s =
            new ExpertShard("inproc", new ExpertRange(0, 63), weights, OrtRuntime.shared());
        ExpertShardServer server =
            new ExpertShardServer(
                    s,
                    GrpcServer.on(InProcessServerBuilder.forName("shard-inproc")).name("inproc"),
                    1 << 20)
                .start()) {
      assertEquals(-1, server.port());
      var ch = InProcessChannelBuilder.forName("shard-inproc").build();
      try {
        NodeStatus st =
            NodeServiceGrpc.newBlockingStub(ch).status(StatusRequest.getDefaultInstance());
        assertEquals("inproc", st.getId());
      } finally {
        ch.shutdownNow();
      }
    }
  }
}
