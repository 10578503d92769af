package dev.pdserve.benchmarks;

import dev.pdserve.core.experts.RemoteExperts;
import dev.pdserve.expert.ExpertShard;
import dev.pdserve.expert.ExpertShardStats;
import dev.pdserve.internal.v1.NodeServiceGrpc;
import dev.pdserve.internal.v1.StatusRequest;
import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.engine.ExpertBackend;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.LocalExperts;
import dev.pdserve.model.engine.RoutedBatch;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelWeights;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * Per-layer routed-expert latency, in-process ({@link LocalExperts}) against two shards on loopback
 * ({@link RemoteExperts}), for decode-sized batches. Not a test: run by hand.
 *
 * <pre>
 * mvn -o -q -pl benchmarks -am compile org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath -Dmdep.outputFile=target/cp.txt
 * java -cp benchmarks/target/classes:$(cat benchmarks/target/cp.txt) \
 *     dev.pdserve.benchmarks.ExpertDispatchBenchmark [preset=tiny] [iterations=2000] [rows=1,8,32] [shards=2]
 * </pre>
 */
public final class ExpertDispatchBenchmark {
  private ExpertDispatchBenchmark() {}

  public static void main(String[] args) {
    String preset = args.length > 0 ? args[0] : "tiny";
    int iterations = args.length > 1 ? Integer.parseInt(args[1]) : 2000;
    int[] rowCounts =
        args.length > 2
            ? Arrays.stream(args[2].split(",")).mapToInt(Integer::parseInt).toArray()
            : new int[] {1, 8, 32};
    int shards = args.length > 3 ? Integer.parseInt(args[3]) : 2;
    ModelConfig cfg = ModelPresets.get(preset);
    int layer = cfg.layerKinds().indexOf(LayerKind.MOE);
    OrtRuntime rt = OrtRuntime.shared();
    try (ModelWeights weights = new ModelWeights(cfg, new DummyWeights(cfg, 42), rt);
        ExpertCompute all = new ExpertCompute(cfg, weights, rt, ExpertCompute.HostedExperts.ALL);
        LoopbackShards cluster = LoopbackShards.start(cfg, weights, shards)) {
      LocalExperts local = new LocalExperts(all);
      RemoteExperts remote = cluster.remote();
      System.out.printf(
          Locale.ROOT,
          "preset %s, layer %d, hidden %d, top-%d, %d shard(s), %d iterations, %d CPUs%n",
          preset,
          layer,
          cfg.hidden(),
          cfg.topK(),
          shards,
          iterations,
          Runtime.getRuntime().availableProcessors());
      System.out.printf(
          Locale.ROOT,
          "%6s %-8s %10s %10s %10s%n",
          "rows",
          "experts",
          "mean µs",
          "p50 µs",
          "p99 µs");
      List<List<RoutedBatch>> batchesByRows = new ArrayList<>();
      for (int rows : rowCounts) {
        List<RoutedBatch> batches = new ArrayList<>();
        Random rnd = new Random(rows);
        for (int i = 0; i < 64; i++) {
          batches.add(randomBatch(cfg, rnd, layer, rows));
        }
        batchesByRows.add(batches);
      }
      // one untimed pass over everything first: the gRPC and Netty paths need many calls before the
      // JIT is done with them
      for (List<RoutedBatch> batches : batchesByRows) {
        measure(local, batches, iterations);
        measure(remote, batches, iterations);
      }
      Map<String, Long> lastDispatches = new HashMap<>();
      Map<String, Double> lastMillis = new HashMap<>();
      snapshot(cluster, lastDispatches, lastMillis);
      for (int r = 0; r < rowCounts.length; r++) {
        for (String name : List.of("local", "remote")) {
          long[] t =
              measure(name.equals("local") ? local : remote, batchesByRows.get(r), iterations);
          Arrays.sort(t);
          double mean = Arrays.stream(t).average().orElse(0) / 1e3;
          System.out.printf(
              Locale.ROOT,
              "%6d %-8s %10.1f %10.1f %10.1f",
              rowCounts[r],
              name,
              mean,
              t[t.length / 2] / 1e3,
              t[(int) (t.length * 0.99)] / 1e3);
          if (name.equals("remote")) {
            System.out.print(
                "   shard compute µs/dispatch:" + snapshot(cluster, lastDispatches, lastMillis));
          }
          System.out.println();
        }
      }
      // the floor: one small unary call on the same channel (NodeService.Status)
      NodeServiceGrpc.NodeServiceBlockingStub status =
          NodeServiceGrpc.newBlockingStub(cluster.channel("shard-a"));
      StatusRequest req = StatusRequest.getDefaultInstance();
      long[] t = new long[iterations];
      for (int i = 0; i < iterations + 200; i++) {
        long s = System.nanoTime();
        status.status(req);
        if (i >= 200) {
          t[i - 200] = System.nanoTime() - s;
        }
      }
      Arrays.sort(t);
      System.out.printf(
          Locale.ROOT,
          "%6s %-8s %10.1f %10.1f %10.1f%n",
          "-",
          "status",
          Arrays.stream(t).average().orElse(0) / 1e3,
          t[t.length / 2] / 1e3,
          t[(int) (t.length * 0.99)] / 1e3);
      System.out.printf(
          Locale.ROOT,
          "remote: %d calls, mean %.1f µs, max %.1f µs; traffic %s%n",
          remote.metrics().calls(),
          remote.metrics().meanLatencyMicros(),
          remote.metrics().maxLatencyMicros(),
          remote.metrics().shards());
    }
  }

  /** Mean compute time per dispatch in each shard since the last snapshot. */
  private static String snapshot(
      LoopbackShards cluster, Map<String, Long> lastDispatches, Map<String, Double> lastMillis) {
    StringBuilder sb = new StringBuilder();
    for (Map.Entry<String, ExpertShard> e : cluster.shards().entrySet()) {
      ExpertShardStats st = e.getValue().stats();
      long d = st.dispatches() - lastDispatches.getOrDefault(e.getKey(), 0L);
      double ms = st.computeMillis() - lastMillis.getOrDefault(e.getKey(), 0.0);
      lastDispatches.put(e.getKey(), st.dispatches());
      lastMillis.put(e.getKey(), st.computeMillis());
      sb.append(String.format(Locale.ROOT, " %s %.1f", e.getKey(), d == 0 ? 0 : ms * 1e3 / d));
    }
    return sb.toString();
  }

  private static long[] measure(ExpertBackend b, List<RoutedBatch> batches, int iterations) {
    long[] t = new long[iterations];
    for (int i = 0; i < iterations; i++) {
      RoutedBatch batch = batches.get(i % batches.size());
      long s = System.nanoTime();
      b.routed(batch);
      t[i] = System.nanoTime() - s;
    }
    return t;
  }

  private static RoutedBatch randomBatch(ModelConfig cfg, Random rnd, int layer, int rows) {
    int h = cfg.hidden();
    int k = cfg.topK();
    float[] hn = new float[rows * h];
    for (int i = 0; i < hn.length; i++) {
      hn[i] = (float) rnd.nextGaussian();
    }
    int[] group = new int[rows];
    long[] ids = new long[rows * k];
    float[] w = new float[rows * k];
    List<Integer> pick = new ArrayList<>();
    for (int e = 0; e < cfg.expertGroups().get(0).numExperts(); e++) {
      pick.add(e);
    }
    for (int r = 0; r < rows; r++) {
      Collections.shuffle(pick, rnd);
      for (int j = 0; j < k; j++) {
        ids[r * k + j] = pick.get(j);
        w[r * k + j] = 1f / k;
      }
    }
    return new RoutedBatch(layer, rows, h, k, hn, group, ids, w);
  }
}
