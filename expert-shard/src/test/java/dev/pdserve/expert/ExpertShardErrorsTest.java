package dev.pdserve.expert;

import static dev.pdserve.expert.TinyModel.CFG;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.testing.FakeTicker;
import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.core.cluster.ExpertPlacement.ExpertKey;
import dev.pdserve.core.config.ExpertRange;
import dev.pdserve.core.experts.DispatchCodec;
import dev.pdserve.core.experts.ExpertDispatchException;
import dev.pdserve.core.experts.RemoteExperts;
import dev.pdserve.core.experts.ShardDirectory;
import dev.pdserve.core.grpc.GrpcServer;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.internal.v1.DispatchRequest;
import dev.pdserve.internal.v1.DispatchResponse;
import dev.pdserve.internal.v1.ExpertServiceGrpc;
import dev.pdserve.model.engine.RoutedBatch;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelWeights;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Every way a dispatch fails, on real servers, with a message that names what went wrong. */
class ExpertShardErrorsTest {
  static ModelWeights weights;
  ShardCluster cluster;
  final Random rnd = new Random(11);

  @BeforeAll
  static void setUp() {
    weights = new ModelWeights(CFG, new DummyWeights(CFG, TinyModel.SEED), OrtRuntime.shared());
  }

  @AfterAll
  static void tearDown() {
    weights.close();
  }

  @BeforeEach
  void startShards() {
    cluster = ShardCluster.start(weights, Map.of("shard-a", "0-31", "shard-b", "32-63"));
  }

  @AfterEach
  void closeCluster() {
    cluster.close();
  }

  private ExpertServiceGrpc.ExpertServiceBlockingStub stub(String shard) {
    return ExpertServiceGrpc.newBlockingStub(cluster.channels.get(cluster.addresses.get(shard)))
        .withDeadlineAfter(Duration.ofSeconds(10));
  }

  /** A valid request for shard-a: 3 rows of layer 1, every slot on experts 0-31. */
  private DispatchRequest valid() {
    RoutedBatch b = TinyModel.randomBatch(rnd, 1, 3, 32);
    DispatchRequest.Builder r =
        DispatchRequest.newBuilder()
            .setRequestId("t")
            .setLayer(1)
            .setRows(3)
            .setHidden(CFG.hidden())
            .setTopK(CFG.topK())
            .setHn(DispatchCodec.floats(b.hn()))
            .setPlacementVersion(7);
    for (int g : b.group()) {
      r.addGroup(g);
    }
    for (long e : b.expertIds()) {
      r.addExpertIds((int) e);
    }
    for (float w : b.weights()) {
      r.addWeights(w);
    }
    return r.build();
  }

  @Test
  void aValidRequestIsAnswered() {
    DispatchResponse resp = stub("shard-a").dispatch(valid());
    assertEquals(3 * CFG.hidden() * 8, resp.getPartial().size());
    assertTrue(resp.getExpertsRun() > 0);
  }

  @Test
  void malformedRequestsAreInvalidArgument() {
    Map<String, UnaryOperator<DispatchRequest.Builder>> cases = new LinkedHashMap<>();
    cases.put(
        "hn has 764 bytes, expected rows 3 × hidden 64 × 4 = 768",
        b -> b.setHn(b.getHn().substring(4)));
    cases.put(
        "group has 2 entries, expected one per row (3)",
        b -> b.clearGroup().addGroup(0).addGroup(0));
    cases.put(
        "expert_ids has 17 entries, expected rows 3 × top_k 6 = 18",
        b -> {
          List<Integer> ids = b.getExpertIdsList().subList(0, 17);
          return b.clearExpertIds().addAllExpertIds(List.copyOf(ids));
        });
    cases.put(
        "weights has 0 entries, expected rows 3 × top_k 6 = 18",
        DispatchRequest.Builder::clearWeights);
    cases.put("rows must be >= 0, got -1", b -> b.setRows(-1));
    cases.put(
        "hidden is 32, but model tiny has hidden size 64",
        b -> b.setHidden(32).setHn(b.getHn().substring(0, 3 * 32 * 4)));
    cases.put(
        "top_k is 3, but model tiny routes each token to 6 experts",
        b -> {
          List<Integer> ids = b.getExpertIdsList().subList(0, 9);
          List<Float> w = b.getWeightsList().subList(0, 9);
          return b.setTopK(3)
              .clearExpertIds()
              .addAllExpertIds(List.copyOf(ids))
              .clearWeights()
              .addAllWeights(List.copyOf(w));
        });
    cases.put("layer 9 is out of range: model tiny has layers 0..3", b -> b.setLayer(9));
    cases.put("layer -1 is out of range", b -> b.setLayer(-1));
    cases.put("layer 0 is a dense layer; it has no routed experts", b -> b.setLayer(0));
    cases.put(
        "row 1: group 2 is not an expert group of layer 1 (groups [0, 1])", b -> b.setGroup(1, 2));
    cases.put(
        "row 0 slot 2: expert 64 is outside the " + CFG.expertGroups().get(0).name(),
        b -> b.setGroup(0, 0).setExpertIds(2, 64));
    cases.put("row 0 slot 1: expert -2 is outside", b -> b.setExpertIds(1, -2));
    cases.put(
        "row 2 slot 0: weight NaN is not finite", b -> b.setWeights(2 * CFG.topK(), Float.NaN));
    long rejectedBefore = cluster.shard("shard-a").stats().rejectedDispatches();
    cases.forEach(
        (expected, mutate) -> {
          DispatchRequest bad = mutate.apply(valid().toBuilder()).build();
          StatusRuntimeException e =
              assertThrows(
                  StatusRuntimeException.class, () -> stub("shard-a").dispatch(bad), expected);
          assertEquals(
              Status.Code.INVALID_ARGUMENT,
              e.getStatus().getCode(),
              expected + " → " + e.getStatus());
          assertTrue(
              e.getStatus().getDescription().startsWith(expected),
              "expected '" + expected + "', got '" + e.getStatus().getDescription() + "'");
        });
    assertTrue(
        cluster.shard("shard-a").stats().rejectedDispatches() - rejectedBefore >= 9,
        "rejections counted");
    assertEquals(
        0, cluster.shard("shard-a").stats().dispatches(), "nothing computed for a bad request");
  }

  @Test
  void anExpertTheShardDoesNotHostIsFailedPrecondition() {
    DispatchRequest.Builder b = valid().toBuilder();
    b.setGroup(0, 1).setExpertIds(3, 40); // row 0 slot 3: vision expert 40
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class, () -> stub("shard-a").dispatch(b.build()));
    assertEquals(Status.Code.FAILED_PRECONDITION, e.getStatus().getCode());
    assertEquals(
        "shard shard-a hosts experts 0-31 but was sent vision expert 40 of layer 1 (request placement version 7)",
        e.getStatus().getDescription());
  }

  @Test
  void aWrongPlacementSurfacesAsTheShardsFailedPrecondition() {
    // claims shard-a hosts every expert: it does not
    ExpertPlacement lie =
        ExpertPlacement.fromShardRanges(CFG, Map.of("shard-a", new ExpertRange(0, 63)))
            .withVersion(3);
    RemoteExperts remote =
        new RemoteExperts(
            lie, cluster.directory(), cluster.channels, RemoteExperts.Settings.defaults());
    RoutedBatch b = TinyModel.randomBatch(rnd, 2, 5, Integer.MAX_VALUE);
    ExpertDispatchException e = assertThrows(ExpertDispatchException.class, () -> remote.routed(b));
    assertEquals("shard-a", e.shardId());
    assertEquals(2, e.layer());
    assertEquals(Status.Code.FAILED_PRECONDITION, e.status().getCode());
    assertTrue(
        e.getMessage()
            .startsWith(
                "expert shard shard-a ("
                    + cluster.addresses.get("shard-a")
                    + ") failed layer 2 (placement v3): FAILED_PRECONDITION: shard shard-a hosts experts 0-31 but was sent"),
        e.getMessage());
    assertTrue(e.getMessage().endsWith("(request placement version 3)"), e.getMessage());
    assertEquals(1, remote.metrics().failedCalls());
  }

  @Test
  void aShardThatIsDownIsNamedWithTheExpertsItLeavesWithoutAShard() {
    FakeTicker clock = new FakeTicker();
    RemoteExperts remote =
        new RemoteExperts(
            cluster.placement(1),
            cluster.directory(),
            cluster.channels,
            RemoteExperts.Settings.defaults().withFailedShardHold(Duration.ofSeconds(5), clock));
    RoutedBatch b = TinyModel.randomBatch(rnd, 3, 8, Integer.MAX_VALUE);
    remote.routed(b); // both up
    cluster.stop("shard-b");
    ExpertDispatchException e = assertThrows(ExpertDispatchException.class, () -> remote.routed(b));
    assertEquals("shard-b", e.shardId());
    assertEquals(3, e.layer());
    assertEquals(ServingException.Kind.UNAVAILABLE, e.kind());
    assertEquals(Status.Code.UNAVAILABLE, e.status().getCode());
    String m = e.getMessage();
    assertTrue(
        m.contains(
            " of layer 3 have no live shard (shard shard-b at "
                + cluster.addresses.get("shard-b")
                + " failed: UNAVAILABLE"),
        m);
    assertTrue(m.endsWith("; requests that need them fail until a shard hosting them is back"), m);
    assertFalse(m.contains("Exception"), "no class name in " + m);
    for (int r = 0; r < b.rows(); r++) {
      for (int j = 0; j < b.topK(); j++) {
        long x = b.expertIds()[r * b.topK() + j];
        if (x >= 32) {
          assertTrue(
              m.matches(".*experts ([0-9]+, )*" + x + "\\b.*"), "names expert " + x + ": " + m);
        }
      }
    }
    assertEquals(1, remote.metrics().shard("shard-b").failures());
    assertEquals(0, remote.metrics().shard("shard-a").failures());
    // held down: the next call fails at once without dialling it
    long sent = remote.metrics().shard("shard-b").requests();
    ExpertDispatchException again =
        assertThrows(ExpertDispatchException.class, () -> remote.routed(b));
    assertTrue(again.getMessage().contains("shard shard-b at "), again.getMessage());
    assertTrue(again.getMessage().contains("failed 0.0 s ago: UNAVAILABLE"), again.getMessage());
    assertEquals(sent, remote.metrics().shard("shard-b").requests(), "not dialled again");
    // after the hold it is tried again (and fails again)
    clock.advance(Duration.ofSeconds(5));
    assertThrows(ExpertDispatchException.class, () -> remote.routed(b));
    assertEquals(2, remote.metrics().shard("shard-b").failures());
    // a batch that needs only shard-a still works
    RoutedBatch lowOnly = TinyModel.randomBatch(rnd, 3, 4, 32);
    remote.routed(lowOnly);
  }

  @Test
  void aShardThatDoesNotAnswerInTimeIsNamed() throws Exception {
    ExpertServiceGrpc.ExpertServiceImplBase silent =
        new ExpertServiceGrpc.ExpertServiceImplBase() {
          @Override
          public void dispatch(DispatchRequest request, StreamObserver<DispatchResponse> out) {
            // never answers
          }
        };
    try (GrpcServer slow =
        GrpcServer.forAddress("127.0.0.1", 0)
            .name("silent")
            .shutdownGrace(Duration.ofMillis(200))
            .addService(silent)
            .build()
            .start()) {
      Map<String, String> addresses = new HashMap<>(cluster.addresses);
      addresses.put("shard-b", "127.0.0.1:" + slow.port());
      RemoteExperts remote =
          new RemoteExperts(
              cluster.placement(1),
              ShardDirectory.of(addresses),
              cluster.channels,
              RemoteExperts.Settings.defaults().withDeadline(Duration.ofMillis(300)));
      // Text experts 32-63 only: nothing for shard-a, whose answer could itself take 300 ms on a
      // loaded machine.
      RoutedBatch low = TinyModel.randomBatch(rnd, 1, 6, 32);
      long[] high = low.expertIds().clone();
      for (int i = 0; i < high.length; i++) {
        high[i] += 32;
      }
      RoutedBatch onlyB =
          new RoutedBatch(
              1, 6, CFG.hidden(), CFG.topK(), low.hn(), new int[6], high, low.weights());
      ExpertDispatchException e =
          assertThrows(ExpertDispatchException.class, () -> remote.routed(onlyB));
      assertEquals("shard-b", e.shardId());
      // without a replica its experts have no live shard; the message says it did not answer
      assertEquals(Status.Code.UNAVAILABLE, e.status().getCode());
      assertTrue(
          e.getMessage()
              .contains(
                  "(shard shard-b at 127.0.0.1:" + slow.port() + " failed: DEADLINE_EXCEEDED"),
          e.getMessage());
      assertEquals(1, remote.metrics().shard("shard-b").failures());
    }
  }

  @Test
  void aReplicaThatDoesNotAnswerInTimeIsSkippedAndTheBatchIsComputedByTheOther() throws Exception {
    ExpertServiceGrpc.ExpertServiceImplBase frozen =
        new ExpertServiceGrpc.ExpertServiceImplBase() {
          @Override
          public void dispatch(DispatchRequest request, StreamObserver<DispatchResponse> out) {
            // a frozen process: accepts the call, never answers
          }
        };
    cluster.close();
    // shard-a hosts every expert; 32-63 are replicated on shard-b, which is frozen
    cluster = ShardCluster.start(weights, Map.of("shard-a", "0-63", "shard-b", "32-63"));
    try (GrpcServer slow =
        GrpcServer.forAddress("127.0.0.1", 0)
            .name("frozen")
            .shutdownGrace(Duration.ofMillis(200))
            .addService(frozen)
            .build()
            .start()) {
      Map<String, String> addresses = new HashMap<>(cluster.addresses);
      addresses.put("shard-b", "127.0.0.1:" + slow.port());
      FakeTicker clock = new FakeTicker();
      RemoteExperts remote =
          new RemoteExperts(
              cluster.placement(1),
              ShardDirectory.of(addresses),
              cluster.channels,
              RemoteExperts.Settings.defaults()
                  // long enough for shard-a's answer on a loaded machine
                  .withDeadline(Duration.ofSeconds(2))
                  .withFailedShardHold(Duration.ofSeconds(5), clock));
      RemoteExperts aOnly =
          new RemoteExperts(
              ExpertPlacement.fromShardRanges(CFG, Map.of("shard-a", ExpertRange.parse("0-63")))
                  .withVersion(1),
              cluster.directory(),
              cluster.channels,
              RemoteExperts.Settings.defaults());
      RoutedBatch b = TinyModel.randomBatch(rnd, 2, 16, Integer.MAX_VALUE);
      float[] expected = aOnly.routed(b);
      assertArrayEquals(expected, remote.routed(b), "computed on shard-a after shard-b's deadline");
      assertEquals(1, remote.metrics().shard("shard-b").failures());
      long sent = remote.metrics().shard("shard-b").requests();
      assertTrue(sent >= 1, "shard-b was asked first");
      // held down: the next batches go straight to shard-a
      assertArrayEquals(expected, remote.routed(b));
      assertEquals(sent, remote.metrics().shard("shard-b").requests(), "not asked again");
    }
  }

  @Test
  void anExpertWithoutAShardIsAClearError() {
    Map<ExpertKey, List<String>> holes = new HashMap<>(cluster.placement(1).shards());
    holes.remove(new ExpertKey(2, 0, 40));
    RemoteExperts remote =
        new RemoteExperts(
            new ExpertPlacement(4, holes),
            cluster.directory(),
            cluster.channels,
            RemoteExperts.Settings.defaults());
    RoutedBatch b = TinyModel.randomBatch(rnd, 2, 2, Integer.MAX_VALUE);
    long[] ids = b.expertIds().clone();
    ids[0] = 40;
    int[] text = {0, 0};
    RoutedBatch needs40 =
        new RoutedBatch(2, 2, CFG.hidden(), CFG.topK(), b.hn(), text, dedupe(ids), b.weights());
    ExpertDispatchException e =
        assertThrows(ExpertDispatchException.class, () -> remote.routed(needs40));
    assertNull(e.shardId());
    assertEquals(
        "expert 40 of layer 2 has no live shard (expert placement v4 places no shard for it);"
            + " requests that need them fail until a shard hosting them is back",
        e.getMessage());
    assertEquals(0, remote.metrics().calls(), "nothing was sent");

    RemoteExperts none =
        new RemoteExperts(
            null, cluster.directory(), cluster.channels, RemoteExperts.Settings.defaults());
    ExpertDispatchException e2 = assertThrows(ExpertDispatchException.class, () -> none.routed(b));
    assertEquals("layer 2: no expert placement has been published yet", e2.getMessage());
  }

  @Test
  void aShardWithoutAnAddressIsNamed() {
    RemoteExperts remote =
        new RemoteExperts(
            cluster.placement(1),
            ShardDirectory.of(Map.of("shard-a", cluster.addresses.get("shard-a"))),
            cluster.channels,
            RemoteExperts.Settings.defaults());
    ExpertDispatchException e =
        assertThrows(
            ExpertDispatchException.class,
            () -> remote.routed(TinyModel.randomBatch(rnd, 1, 10, Integer.MAX_VALUE)));
    assertEquals("shard-b", e.shardId());
    assertTrue(
        e.getMessage().contains(" of layer 1 have no live shard (shard shard-b left the cluster)"),
        e.getMessage());
    assertEquals(0, remote.metrics().shard("shard-b").requests(), "nothing sent to it");
  }

  /** Keeps each row's expert ids distinct after an edit of slot 0. */
  private static long[] dedupe(long[] ids) {
    int k = CFG.topK();
    for (int r = 0; r < ids.length / k; r++) {
      Set<Long> seen = new HashSet<>();
      for (int j = 0; j < k; j++) {
        long e = ids[r * k + j];
        while (!seen.add(e)) {
          e = (e + 1) % 64;
        }
        ids[r * k + j] = e;
      }
    }
    return ids;
  }
}
