package dev.pdserve.expert;

import static dev.pdserve.expert.TinyModel.CFG;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.core.experts.DispatchMetrics;
import dev.pdserve.core.experts.DispatchPlan;
import dev.pdserve.core.experts.RemoteExperts;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.LocalExperts;
import dev.pdserve.model.engine.RoutedBatch;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelWeights;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Remote experts over real gRPC shards give exactly LocalExperts' floats. */
class RemoteExpertsParityTest {
  static ModelWeights weights;
  static ExpertCompute all;
  static LocalExperts local;
  ShardCluster cluster;

  @BeforeAll
  static void setUp() {
    weights = new ModelWeights(CFG, new DummyWeights(CFG, TinyModel.SEED), OrtRuntime.shared());
    all = new ExpertCompute(CFG, weights, OrtRuntime.shared(), ExpertCompute.HostedExperts.ALL);
    local = new LocalExperts(all);
  }

  @AfterAll
  static void tearDown() {
    all.close();
    weights.close();
  }

  @AfterEach
  void closeCluster() {
    if (cluster != null) {
      cluster.close();
    }
  }

  /**
   * Random batches of 1..40 text and vision rows on every MoE layer, remote vs local, bit for bit.
   */
  private void assertParity(RemoteExperts remote, long seed, int batchesPerLayer) {
    Random rnd = new Random(seed);
    for (int layer : TinyModel.moeLayers()) {
      for (int i = 0; i < batchesPerLayer; i++) {
        int rows = i == 0 ? 1 : 1 + rnd.nextInt(40);
        RoutedBatch b = TinyModel.randomBatch(rnd, layer, rows, Integer.MAX_VALUE);
        String diff = TinyModel.firstDifference(local.routed(b), remote.routed(b), CFG.hidden());
        String where = "layer " + layer + ", batch " + i + " (" + rows + " rows): ";
        assertNull(diff, () -> where + diff);
      }
    }
  }

  @Test
  void twoShardsMatchLocalExpertsBitForBit() {
    cluster = ShardCluster.start(weights, Map.of("shard-a", "0-31", "shard-b", "32-63"));
    RemoteExperts remote = cluster.remote();
    assertParity(remote, 1, 8);
    DispatchMetrics m = remote.metrics();
    assertEquals(TinyModel.moeLayers().size() * 8L, m.calls());
    assertTrue(
        m.shard("shard-a").tokens() > 0 && m.shard("shard-b").tokens() > 0,
        () -> "traffic " + m.shards());
    long shardTokens =
        cluster.shard("shard-a").stats().tokens() + cluster.shard("shard-b").stats().tokens();
    assertEquals(
        m.shard("shard-a").tokens() + m.shard("shard-b").tokens(),
        shardTokens,
        "tokens sent = tokens computed");
  }

  @Test
  void fourShardsMatchLocalExpertsBitForBit() {
    cluster =
        ShardCluster.start(
            weights, Map.of("s0", "0-15", "s1", "16-31", "s2", "32-47", "s3", "48-63"));
    RemoteExperts remote = cluster.remote();
    assertParity(remote, 2, 8);
    for (String s : List.of("s0", "s1", "s2", "s3")) {
      assertTrue(cluster.shard(s).stats().tokens() > 0, s + " computed nothing");
    }
  }

  @Test
  void replicatedExpertsMatchAndSpreadOverTheirReplicas() {
    // 16-47 live on two shards each
    cluster =
        ShardCluster.start(
            weights, Map.of("shard-a", "0-31", "shard-b", "32-63", "shard-hot", "16-47"));
    RemoteExperts remote = cluster.remote();
    assertParity(remote, 3, 8);
    long onA = 0;
    long onHot = 0;
    long onB = 0;
    long onHotHigh = 0;
    for (int layer : TinyModel.moeLayers()) {
      for (int g = 0; g < 2; g++) {
        for (int e = 16; e < 32; e++) {
          onA += cluster.shard("shard-a").stats().tokens(layer, g, e);
          onHot += cluster.shard("shard-hot").stats().tokens(layer, g, e);
        }
        for (int e = 32; e < 48; e++) {
          onB += cluster.shard("shard-b").stats().tokens(layer, g, e);
          onHotHigh += cluster.shard("shard-hot").stats().tokens(layer, g, e);
        }
      }
    }
    assertTrue(
        onA > 0 && onHot > 0,
        "experts 16-31 use both replicas: shard-a " + onA + ", shard-hot " + onHot);
    assertTrue(
        onB > 0 && onHotHigh > 0,
        "experts 32-47 use both replicas: shard-b " + onB + ", shard-hot " + onHotHigh);
    // one expert's rows never split: each replicated expert was computed on exactly one replica
    for (int layer : TinyModel.moeLayers()) {
      for (int g = 0; g < 2; g++) {
        for (int e = 16; e < 32; e++) {
          boolean a = cluster.shard("shard-a").stats().tokens(layer, g, e) > 0;
          boolean hot = cluster.shard("shard-hot").stats().tokens(layer, g, e) > 0;
          assertTrue(!(a && hot), "L" + layer + "/g" + g + "/e" + e + " ran on both replicas");
        }
      }
    }
  }

  @Test
  void replicaChoiceIsAFunctionOfTheExpertAlone() {
    List<String> replicas = List.of("x", "y", "z");
    int[] used = new int[3];
    for (int e = 0; e < 64; e++) {
      String s = DispatchPlan.chooseReplica(1, 0, e, replicas);
      assertEquals(s, DispatchPlan.chooseReplica(1, 0, e, replicas), "stable");
      used[replicas.indexOf(s)]++;
    }
    for (int i = 0; i < 3; i++) {
      assertTrue(
          used[i] > 10,
          "replica " + replicas.get(i) + " chosen for only " + used[i] + " of 64 experts");
    }
    assertEquals("only", DispatchPlan.chooseReplica(3, 1, 7, List.of("only")));
  }

  @Test
  void rowsWithoutSlotsOnAShardAreNotSentToIt() {
    cluster = ShardCluster.start(weights, Map.of("shard-a", "0-31", "shard-b", "32-63"));
    RemoteExperts remote = cluster.remote();
    Random rnd = new Random(4);
    int layer = TinyModel.moeLayers().get(0);
    RoutedBatch lowOnly = TinyModel.randomBatch(rnd, layer, 17, 32); // every expert < 32
    assertNull(
        TinyModel.firstDifference(local.routed(lowOnly), remote.routed(lowOnly), CFG.hidden()));
    assertEquals(1, remote.metrics().shard("shard-a").requests());
    assertEquals(17, remote.metrics().shard("shard-a").rows());
    assertEquals(0, remote.metrics().shard("shard-b").requests(), "shard-b has nothing to do");

    // rows compacted: one row mixes both shards, the rest are shard-a's only
    long[] ids = lowOnly.expertIds().clone();
    ids[5 * CFG.topK()] = 40;
    RoutedBatch oneHigh =
        new RoutedBatch(
            layer,
            17,
            CFG.hidden(),
            CFG.topK(),
            lowOnly.hn(),
            lowOnly.group(),
            ids,
            lowOnly.weights());
    assertNull(
        TinyModel.firstDifference(local.routed(oneHigh), remote.routed(oneHigh), CFG.hidden()));
    assertEquals(
        1,
        remote.metrics().shard("shard-b").rows(),
        "only the row with a slot on shard-b is sent there");
    assertEquals(1, remote.metrics().shard("shard-b").tokens());

    // an empty batch sends nothing
    RoutedBatch empty =
        new RoutedBatch(
            layer,
            0,
            CFG.hidden(),
            CFG.topK(),
            new float[0],
            new int[0],
            new long[0],
            new float[0]);
    assertArrayEquals(new float[0], remote.routed(empty));
    assertEquals(2, remote.metrics().calls());
  }

  @Test
  void aNewerPlacementIsUsedFromTheNextCall() {
    cluster =
        ShardCluster.start(
            weights, Map.of("shard-a", "0-31", "shard-b", "32-63", "shard-all", "0-63"));
    ExpertPlacement split =
        ExpertPlacement.fromShardRanges(
            CFG,
            Map.of(
                "shard-a",
                cluster.ranges.get("shard-a"),
                "shard-b",
                cluster.ranges.get("shard-b")));
    ExpertPlacement whole =
        ExpertPlacement.fromShardRanges(CFG, Map.of("shard-all", cluster.ranges.get("shard-all")));
    RemoteExperts remote =
        new RemoteExperts(
            split.withVersion(1),
            cluster.directory(),
            cluster.channels,
            RemoteExperts.Settings.defaults());
    Random rnd = new Random(5);
    RoutedBatch b = TinyModel.randomBatch(rnd, 2, 12, Integer.MAX_VALUE);
    float[] expected = local.routed(b);
    assertNull(TinyModel.firstDifference(expected, remote.routed(b), CFG.hidden()));
    assertEquals(0, remote.metrics().shard("shard-all").requests());

    assertTrue(remote.updatePlacement(whole.withVersion(2)));
    assertTrue(!remote.updatePlacement(split.withVersion(2)), "same version again is ignored");
    assertTrue(!remote.updatePlacement(split.withVersion(1)), "older version is ignored");
    assertNull(TinyModel.firstDifference(expected, remote.routed(b), CFG.hidden()));
    assertEquals(1, remote.metrics().shard("shard-all").requests());
    assertEquals(
        1, remote.metrics().shard("shard-a").requests(), "v1's shards not used after the switch");
    assertEquals(2, remote.placement().version());

    // A healed split brain: the registry kept the other side's v2. It is adopted though its version
    // is not newer, and the next call uses its shards.
    assertTrue(remote.adoptMerged(split.withVersion(2)));
    assertEquals(split.withVersion(2), remote.placement());
    assertTrue(
        !remote.adoptMerged(split.withVersion(2)), "the same placement again changes nothing");
    assertNull(TinyModel.firstDifference(expected, remote.routed(b), CFG.hidden()));
    assertEquals(2, remote.metrics().shard("shard-a").requests(), "the merged placement's shards");
    assertEquals(1, remote.metrics().shard("shard-all").requests());
  }
}
