package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.api.v1.Completion;
import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.api.v1.SamplingParams;
import dev.pdserve.core.grpc.ProtoConversions;
import dev.pdserve.core.metrics.MetricNames;
import dev.pdserve.launcher.metrics.PrometheusText;
import dev.pdserve.launcher.node.WorkerNode;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.router.RouterMetrics;
import io.grpc.ManagedChannel;
import io.grpc.stub.StreamObserver;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A decode node killed mid-stream loses nothing (issue 14): on 1P/2D, several long streams run on
 * one decode node while the other stands idle; the busy node then crashes — its gRPC and Flight
 * servers stop at once and it leaves the cluster without draining ({@link WorkerNode#crash}). The
 * router continues every stream on the idle node (a fresh reservation, the prompt and the tokens
 * already sent prefilled again, the stream resumed), so each ends with exactly the single-process
 * engine's tokens — greedy and seeded sampling alike — none lost, none repeated, and the surviving
 * nodes' KV pools are full again afterwards.
 */
class DecodeNodeCrashTest {
  private static final int MAX_TOKENS = 400;
  private static final int TOKENS_BEFORE_CRASH = 24;
  private static final Duration HANG_GUARD = Duration.ofSeconds(120);

  @Test
  void everyStreamOfACrashedDecodeNodeCompletesExactlyOnTheOther() throws Exception {
    try (LoadedModel model = LoadedModel.load(ModelSpec.preset("tiny"));
        ReferenceEngine reference = new ReferenceEngine(model, OrtRuntime.shared());
        InJvmCluster cluster = InJvmCluster.start(1, 2)) {
      WorkerNode doomed = cluster.decode.get(0);
      WorkerNode survivor = cluster.decode.get(1);
      survivor.decode().setAccepting(false); // every stream starts on the doomed node

      List<GenerateRequest> requests = new ArrayList<>();
      for (int i = 0; i < 4; i++) {
        requests.add(Greedy.request("crash" + i, "stream " + i + " outlives its node", MAX_TOKENS));
      }
      requests.add(seeded("crash-seeded", "a sampled stream outlives its node too"));
      List<WatchedStream> streams = new ArrayList<>();
      for (GenerateRequest r : requests) {
        streams.add(WatchedStream.start(cluster.channel, r));
      }
      for (WatchedStream s : streams) {
        s.tokensReached(TOKENS_BEFORE_CRASH).get(HANG_GUARD.toSeconds(), TimeUnit.SECONDS);
      }
      assertEquals(
          requests.size(), doomed.decode().stats().running(), "every stream is on the doomed node");
      survivor.decode().setAccepting(true);

      List<Integer> beforeCrash = new ArrayList<>();
      for (WatchedStream s : streams) {
        beforeCrash.add(s.tokenCount());
      }
      doomed.crash();
      cluster.decode.remove(doomed);

      for (int i = 0; i < streams.size(); i++) {
        WatchedStream s = streams.get(i);
        Completion c = s.completion().get(HANG_GUARD.toSeconds(), TimeUnit.SECONDS);
        String id = requests.get(i).getRequestId();
        assertNull(s.error(), id + " failed: " + s.error());
        assertNotNull(c, id + " ended without a completion");
        assertEquals("length", c.getFinishReason(), id);
        assertEquals(MAX_TOKENS, c.getUsage().getCompletionTokens(), id);
        assertArrayEquals(
            expected(reference, requests.get(i)),
            s.tokenIds(),
            id + " differs from the reference engine (a token lost or repeated across the crash)");
        assertTrue(
            beforeCrash.get(i) < MAX_TOKENS,
            id + " had finished before the crash; the test must crash its node mid-stream");
      }
      assertEquals(
          streams.size(),
          routerCounter(
              cluster,
              "pdserve_request_migrations_total",
              RouterMetrics.MIGRATION_DECODE_NODE_LOST),
          "each stream moved once, because its decode node was lost");
      assertEquals(
          0, routerCounter(cluster, "pdserve_request_rejections_total", "migration_failed"));
      assertTrue(
          survivor.decode().stats().tokens() >= streams.size(),
          "the survivor decoded the rest of the streams");
      cluster.awaitNoKvHeld(); // the prefill node and the survivor
    }
  }

  /** A request sampled at temperature 0.8 with a fixed seed: the router must keep it. */
  private static GenerateRequest seeded(String id, String prompt) {
    return GenerateRequest.newBuilder()
        .setRequestId(id)
        .setPrompt(prompt)
        .setParams(
            SamplingParams.newBuilder()
                .setTemperature(0.8f)
                .setTopP(0.95f)
                .setSeed(20_261_129)
                .setMaxTokens(MAX_TOKENS)
                .setIgnoreEos(true))
        .build();
  }

  /** The reference engine's tokens for {@code r}, with the same sampling parameters and seed. */
  static int[] expected(ReferenceEngine reference, GenerateRequest r) {
    return reference
        .generate(
            new dev.pdserve.model.engine.GenerateRequest(
                "ref", Prompt.text(r.getPrompt()), ProtoConversions.sampling(r.getParams()), true))
        .tokenIds();
  }

  /** The router's counter {@code sample} with label reason = {@code reason}, scraped. */
  static double routerCounter(InJvmCluster cluster, String sample, String reason) throws Exception {
    String body =
        HttpClient.newHttpClient()
            .send(
                HttpRequest.newBuilder(URI.create(cluster.router.metrics().url())).build(),
                HttpResponse.BodyHandlers.ofString())
            .body();
    return PrometheusText.parse(body).sum(sample, Map.of(MetricNames.REASON, reason));
  }

  /** A Generate stream the test watches as it happens: its tokens, then its end. */
  static final class WatchedStream implements StreamObserver<GenerateResponse> {
    private final List<Integer> tokens = new ArrayList<>(); // guarded by this
    private final List<CompletableFuture<Void>> waits = new ArrayList<>(); // guarded by this
    private final List<Integer> waitCounts = new ArrayList<>(); // guarded by this
    private final CompletableFuture<Completion> end = new CompletableFuture<>();
    private volatile Throwable error;
    private Completion completion; // guarded by this

    static WatchedStream start(ManagedChannel channel, GenerateRequest r) {
      WatchedStream s = new WatchedStream();
      GenerationGrpc.newStub(channel).withDeadlineAfter(180, TimeUnit.SECONDS).generate(r, s);
      return s;
    }

    @Override
    public synchronized void onNext(GenerateResponse r) {
      if (r.hasDelta()) {
        tokens.addAll(r.getDelta().getTokenIdsList());
        for (int i = 0; i < waits.size(); i++) {
          if (tokens.size() >= waitCounts.get(i)) {
            waits.get(i).complete(null);
          }
        }
      } else if (r.hasCompletion()) {
        completion = r.getCompletion();
      }
    }

    @Override
    public void onError(Throwable t) {
      error = t;
      synchronized (this) {
        waits.forEach(w -> w.completeExceptionally(t));
      }
      end.complete(null);
    }

    @Override
    public synchronized void onCompleted() {
      end.complete(completion);
    }

    /** Completes once {@code n} tokens have arrived (exceptionally if the stream fails first). */
    synchronized CompletableFuture<Void> tokensReached(int n) {
      CompletableFuture<Void> f = new CompletableFuture<>();
      if (tokens.size() >= n) {
        f.complete(null);
      } else {
        waits.add(f);
        waitCounts.add(n);
      }
      return f;
    }

    synchronized int tokenCount() {
      return tokens.size();
    }

    synchronized int[] tokenIds() {
      return tokens.stream().mapToInt(Integer::intValue).toArray();
    }

    /** The stream's completion once it ended (null when it failed: see {@link #error}). */
    CompletableFuture<Completion> completion() {
      return end;
    }

    Throwable error() {
      return error;
    }
  }
}
