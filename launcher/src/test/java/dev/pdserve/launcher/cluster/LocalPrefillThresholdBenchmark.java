package dev.pdserve.launcher.cluster;

import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.api.v1.SamplingParams;
import dev.pdserve.api.v1.TokenIds;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.launcher.node.RouterNode;
import dev.pdserve.router.RouterOptions;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import java.time.Duration;
import java.util.Arrays;
import java.util.Iterator;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * How the default of {@code pdserve.router.local-prefill-threshold} was chosen: time to first token
 * of prompts of several lengths on one 1P/1D cluster, through a router that always disaggregates
 * (threshold 0) and one that always prefills on the decode node. Every prompt is new (random
 * tokens), so no prefix cache helps the disaggregated path. Not run by {@code mvn verify} (the
 * class name is not a test name); run by hand:
 *
 * <pre>
 * mvn -o -q -pl launcher -am test -Dtest=LocalPrefillThresholdBenchmark -Dsurefire.failIfNoSpecifiedTests=false
 * </pre>
 */
@Tag("benchmark")
class LocalPrefillThresholdBenchmark {
  @Test
  void timeToFirstTokenDisaggregatedVersusLocal() throws Exception {
    String preset = System.getProperty("preset", "tiny");
    int runs = Integer.getInteger("runs", 15);
    try (InJvmCluster c =
        new InJvmCluster().set("model.preset", preset).set("kv.budget-bytes", "64m")) {
      c.addWorker("decode", Map.of());
      c.addWorker("prefill", Map.of());
      c.startRouter(RouterOptions.defaults()); // default threshold: replaced below
      c.awaitRouterSees(1, 1);
      RouterNode split =
          RouterNode.start(
              c.config(
                  "router",
                  "r-split",
                  Map.of("cluster.lite-member", "true", "router.local-prefill-threshold", "0")),
              RouterOptions.defaults());
      RouterNode local =
          RouterNode.start(
              c.config(
                  "router",
                  "r-local",
                  Map.of(
                      "cluster.lite-member", "true", "router.local-prefill-threshold", "100000")),
              RouterOptions.defaults());
      ManagedChannel cs = NettyChannelBuilder.forTarget(split.grpcAddress()).usePlaintext().build();
      ManagedChannel cl = NettyChannelBuilder.forTarget(local.grpcAddress()).usePlaintext().build();
      try {
        InJvmCluster.await(
            Duration.ofSeconds(20),
            () ->
                split.directory().active(NodeRole.PREFILL).size() == 1
                    && local.directory().active(NodeRole.DECODE).size() == 1,
            "routers to see the workers");
        Random rnd = new Random(1);
        System.out.printf("preset %s, median of %d runs, time to first token (ms)%n", preset, runs);
        System.out.printf("%8s %14s %14s%n", "prompt", "disaggregated", "local");
        for (int len : new int[] {4, 16, 32, 64, 128, 256, 512}) {
          for (int w = 0; w < 3; w++) { // warm-up of this shape
            ttft(cs, len, rnd);
            ttft(cl, len, rnd);
          }
          double[] a = new double[runs];
          double[] b = new double[runs];
          for (int i = 0; i < runs; i++) {
            a[i] = ttft(cs, len, rnd);
            b[i] = ttft(cl, len, rnd);
          }
          System.out.printf("%8d %14.2f %14.2f%n", len, median(a), median(b));
        }
      } finally {
        cs.shutdownNow();
        cl.shutdownNow();
        split.close();
        local.close();
      }
    }
  }

  private static double ttft(ManagedChannel ch, int len, Random rnd) {
    TokenIds.Builder ids = TokenIds.newBuilder();
    for (int i = 0; i < len; i++) {
      ids.addIds(3 + rnd.nextInt(250));
    }
    GenerateRequest r =
        GenerateRequest.newBuilder()
            .setRequestId("b-" + rnd.nextLong())
            .setPromptTokenIds(ids)
            .setParams(
                SamplingParams.newBuilder().setTemperature(0).setMaxTokens(1).setIgnoreEos(true))
            .build();
    long t0 = System.nanoTime();
    Iterator<GenerateResponse> it =
        GenerationGrpc.newBlockingStub(ch).withDeadlineAfter(60, TimeUnit.SECONDS).generate(r);
    it.next();
    double ms = (System.nanoTime() - t0) / 1e6;
    while (it.hasNext()) {
      it.next();
    }
    return ms;
  }

  private static double median(double[] v) {
    double[] s = v.clone();
    Arrays.sort(s);
    return s[s.length / 2];
  }
}
