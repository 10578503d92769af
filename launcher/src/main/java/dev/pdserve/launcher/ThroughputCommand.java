package dev.pdserve.launcher;

import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.api.v1.SamplingParams;
import dev.pdserve.api.v1.TokenIds;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.internal.v1.AdminServiceGrpc;
import dev.pdserve.internal.v1.ListNodesRequest;
import dev.pdserve.internal.v1.NodeServiceGrpc;
import dev.pdserve.internal.v1.StatusRequest;
import dev.pdserve.launcher.node.LocalCluster;
import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.engine.ContiguousKv;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.LocalExperts;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.Numerics;
import dev.pdserve.model.engine.SequenceStep;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.sampling.Sampler;
import dev.pdserve.model.weights.ModelWeights;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * Output tokens/s of a local process cluster against the single-process engine on the same prompts,
 * measured side by side in one run. The single-process engine runs the prompts in static batches of
 * {@code --concurrency} (prefill of the whole batch, then decode steps); the cluster gets the same
 * prompts with {@code --concurrency} requests in flight.
 */
@Command(
    name = "throughput",
    mixinStandardHelpOptions = true,
    description =
        "Compare a local cluster's output tokens/s with the single-process engine on the same prompts.")
final class ThroughputCommand implements Callable<Integer> {
  @Spec CommandLine.Model.CommandSpec spec;

  @Option(names = "--prefill", defaultValue = "1")
  int prefill;

  @Option(names = "--decode", defaultValue = "1")
  int decode;

  @Option(names = "--experts", defaultValue = "0")
  int experts;

  @Option(names = "--preset", defaultValue = "tiny")
  String preset;

  @Option(names = "--requests", defaultValue = "64")
  int requests;

  @Option(names = "--concurrency", defaultValue = "16")
  int concurrency;

  @Option(names = "--prompt-len", defaultValue = "64")
  int promptLen;

  @Option(names = "--max-tokens", defaultValue = "64")
  int maxTokens;

  @Option(
      names = "--kv-dtype",
      paramLabel = "DTYPE",
      defaultValue = "fp32",
      converter = KvDtypeOption.class,
      description =
          KvDtypeOption.DESCRIPTION
              + " The same for the single-process engine and every node. Default: ${DEFAULT-VALUE}.")
  KvDtype kvDtype;

  @Mixin QuantizationOptions quantization;

  @Option(
      names = "--ort-threads",
      defaultValue = "0",
      description = "ONNX Runtime threads of the single-process engine (0 = all cores).")
  int threads;

  private Map<String, String> clusterSettings() {
    Map<String, String> m = new java.util.LinkedHashMap<>();
    m.put(NodeConfigLoader.KV_DTYPE, kvDtype.configName());
    quantization.putSettings(m);
    return m;
  }

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    List<int[]> prompts = new ArrayList<>();
    Random rnd = new Random(7);
    for (int i = 0; i < requests; i++) {
      int[] p = new int[promptLen];
      for (int t = 0; t < promptLen; t++) {
        p[t] = 32 + rnd.nextInt(256);
      }
      prompts.add(p);
    }
    out.printf(
        "pdserve throughput: %d requests, prompt %d tokens, %d output tokens each, %d in flight, preset %s, %s KV, weights %s, %d cores%n",
        requests,
        promptLen,
        maxTokens,
        concurrency,
        preset,
        kvDtype.configName(),
        quantization.resolve().describe(),
        Runtime.getRuntime().availableProcessors());
    out.flush();

    // 1. single-process engine, static batches
    List<int[]> single = new ArrayList<>();
    double singleTps;
    OrtRuntime rt = OrtRuntime.shared(new OrtRuntime.RuntimeOptions(threads, false, true));
    try (LoadedModel m = LoadedModel.load(ModelSpec.preset(preset));
        ModelWeights w = new ModelWeights(m.config(), m.weights(), rt, quantization.resolve());
        ModelRunner runner =
            new ModelRunner(m.config(), w, rt, new Numerics(kvDtype, quantization.resolve()));
        ExpertCompute ec = new ExpertCompute(m.config(), w, rt, ExpertCompute.HostedExperts.ALL)) {
      LocalExperts local = new LocalExperts(ec);
      runBatch(runner, local, m, prompts.subList(0, Math.min(2, requests)), 4); // warm-up
      long t0 = System.nanoTime();
      for (int i = 0; i < requests; i += concurrency) {
        single.addAll(
            runBatch(
                runner,
                local,
                m,
                prompts.subList(i, Math.min(requests, i + concurrency)),
                maxTokens));
      }
      singleTps = (double) requests * maxTokens / ((System.nanoTime() - t0) / 1e9);
    }
    out.printf("single-process engine: %.1f output tokens/s%n", singleTps);
    out.flush();

    // 2. the local cluster
    LocalCluster.Spec s =
        new LocalCluster.Spec(
            prefill,
            decode,
            experts,
            preset,
            null,
            ModelSpec.DEFAULT_SEED,
            "256m",
            "WARN",
            clusterSettings(),
            "768m");
    try (LocalCluster cluster = LocalCluster.start(s, line -> {}, Duration.ofSeconds(240))) {
      ManagedChannel ch =
          NettyChannelBuilder.forTarget(cluster.routerAddress()).usePlaintext().build();
      try {
        runCluster(ch, prompts.subList(0, Math.min(2, requests)), 4, 2); // warm-up
        long t0 = System.nanoTime();
        List<int[]> got = runCluster(ch, prompts, maxTokens, concurrency);
        double clusterTps = (double) requests * maxTokens / ((System.nanoTime() - t0) / 1e9);
        int same = 0;
        for (int i = 0; i < requests; i++) {
          same += Arrays.equals(single.get(i), got.get(i)) ? 1 : 0;
        }
        out.printf(
            "local cluster (%dP/%dD/%dE, every node its own process): %.1f output tokens/s%n",
            prefill, decode, experts, clusterTps);
        out.printf(
            "ratio cluster / single-process: %.2f   (%d of %d outputs token-identical)%n",
            clusterTps / singleTps, same, requests);
        for (var n :
            AdminServiceGrpc.newBlockingStub(ch)
                .listNodes(ListNodesRequest.getDefaultInstance())
                .getNodesList()) {
          if (n.getRole().equals("decode") || n.getRole().equals("prefill")) {
            ManagedChannel nc =
                NettyChannelBuilder.forTarget(n.getGrpcAddress()).usePlaintext().build();
            try {
              var st =
                  NodeServiceGrpc.newBlockingStub(nc).status(StatusRequest.getDefaultInstance());
              out.printf(
                  "  %s (%s): %d decode steps, mean batch %.1f, max batch %d%n",
                  st.getId(),
                  st.getRole(),
                  st.getSteps(),
                  st.getMeanBatchSize(),
                  st.getMaxBatchSizeSeen());
            } finally {
              nc.shutdownNow();
            }
          }
        }
      } finally {
        ch.shutdownNow();
      }
    }
    out.flush();
    return 0;
  }

  private static List<int[]> runBatch(
      ModelRunner runner, LocalExperts experts, LoadedModel m, List<int[]> prompts, int maxTokens) {
    List<ContiguousKv> kvs = new ArrayList<>();
    List<SequenceStep> steps = new ArrayList<>();
    for (int[] p : prompts) {
      ContiguousKv kv = new ContiguousKv(m.config(), p.length + maxTokens);
      kvs.add(kv);
      steps.add(SequenceStep.text(p, kv, true));
    }
    float[][] logits = runner.forward(steps, experts);
    List<int[]> out = new ArrayList<>();
    for (int i = 0; i < prompts.size(); i++) {
      out.add(new int[maxTokens]);
    }
    for (int s = 0; s < maxTokens; s++) {
      List<SequenceStep> next = new ArrayList<>();
      for (int i = 0; i < prompts.size(); i++) {
        int t = Sampler.argmax(logits[i]);
        out.get(i)[s] = t;
        next.add(SequenceStep.text(new int[] {t}, kvs.get(i), true));
      }
      if (s + 1 < maxTokens) {
        logits = runner.forward(next, experts);
      }
    }
    return out;
  }

  private static List<int[]> runCluster(
      ManagedChannel ch, List<int[]> prompts, int maxTokens, int concurrency) throws Exception {
    Semaphore slots = new Semaphore(concurrency);
    List<CompletableFuture<int[]>> futures = new ArrayList<>();
    for (int i = 0; i < prompts.size(); i++) {
      slots.acquire();
      TokenIds.Builder ids = TokenIds.newBuilder();
      for (int t : prompts.get(i)) {
        ids.addIds(t);
      }
      var req =
          GenerateRequest.newBuilder()
              .setRequestId("tp-" + i + "-" + System.nanoTime())
              .setPromptTokenIds(ids)
              .setParams(
                  SamplingParams.newBuilder()
                      .setTemperature(0)
                      .setMaxTokens(maxTokens)
                      .setIgnoreEos(true))
              .build();
      CompletableFuture<int[]> f = new CompletableFuture<>();
      futures.add(f);
      GenerationGrpc.newStub(ch)
          .withDeadlineAfter(300, TimeUnit.SECONDS)
          .generate(
              req,
              new StreamObserver<GenerateResponse>() {
                final List<Integer> got = new ArrayList<>();

                @Override
                public void onNext(GenerateResponse r) {
                  if (r.hasDelta()) {
                    got.addAll(r.getDelta().getTokenIdsList());
                  }
                }

                @Override
                public void onError(Throwable t) {
                  slots.release();
                  f.completeExceptionally(t);
                }

                @Override
                public void onCompleted() {
                  slots.release();
                  f.complete(got.stream().mapToInt(Integer::intValue).toArray());
                }
              });
    }
    List<int[]> out = new ArrayList<>();
    for (CompletableFuture<int[]> f : futures) {
      out.add(f.get(600, TimeUnit.SECONDS));
    }
    return out;
  }
}
