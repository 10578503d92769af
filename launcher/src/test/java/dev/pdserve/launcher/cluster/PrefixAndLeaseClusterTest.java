package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.api.v1.AbortRequest;
import dev.pdserve.api.v1.Completion;
import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.api.v1.SamplingParams;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.grpc.ProtoConversions;
import dev.pdserve.core.kv.PrefixCache;
import dev.pdserve.internal.v1.DecodeServiceGrpc;
import dev.pdserve.internal.v1.ReserveRequest;
import dev.pdserve.internal.v1.ReserveResponse;
import dev.pdserve.launcher.node.WorkerNode;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.router.RouterOptions;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Prefix caching, prefix-aware routing, conditional disaggregation and KV leases on a 2P/1D cluster
 * in this JVM (real gRPC, Flight, Hazelcast, ORT). The prefill nodes' pools are small (64 blocks of
 * 16 tokens), so a few long prompts force evictions; leases last 1 s.
 */
class PrefixAndLeaseClusterTest {
  static InJvmCluster cluster;
  static ReferenceEngine reference;
  static LoadedModel model;

  @BeforeAll
  static void start() throws Exception {
    cluster = new InJvmCluster().set("kv.lease-seconds", "1");
    try {
      cluster.addWorker("decode", Map.of());
      cluster.addWorker("prefill", Map.of("kv.budget-bytes", "1m"));
      cluster.addWorker("prefill", Map.of("kv.budget-bytes", "1m"));
      cluster.startRouter(RouterOptions.defaults());
      cluster.awaitRouterSees(2, 1);
    } catch (Exception e) {
      cluster.close();
      throw e;
    }
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

  @AfterEach
  void noKvHeldExceptCachedPrefixes() {
    cluster.awaitNoKvHeld();
  }

  static GenerateRequest raw(String id, String prompt, int maxTokens) {
    return GenerateRequest.newBuilder()
        .setRequestId(id)
        .setPrompt(prompt)
        .setParams(SamplingParams.newBuilder().setTemperature(0).setMaxTokens(maxTokens))
        .build();
  }

  /** Generates through the cluster and checks the tokens against the single-process engine. */
  static InJvmCluster.Result generateMatchingReference(GenerateRequest r) {
    InJvmCluster.Result got = cluster.generate(r);
    assertNotNull(got.completion(), r.getRequestId() + " ended without a completion");
    assertArrayEquals(
        expected(r),
        got.tokenIds(),
        r.getRequestId() + ": tokens differ from the reference engine");
    return got;
  }

  static int[] expected(GenerateRequest r) {
    return reference
        .generate(
            new dev.pdserve.model.engine.GenerateRequest(
                r.getRequestId(),
                new Prompt.Text(r.getPrompt()),
                ProtoConversions.sampling(r.getParams()),
                true))
        .tokenIds();
  }

  static String text(String seed, int chars) {
    StringBuilder b = new StringBuilder();
    while (b.length() < chars) {
      b.append(seed).append(' ').append(b.length()).append(". ");
    }
    return b.substring(0, chars);
  }

  static void awaitPrefillIdleInRoutersView() {
    InJvmCluster.await(
        Duration.ofSeconds(10),
        () ->
            cluster.router.directory().active(NodeRole.PREFILL).stream()
                .allMatch(n -> n.load() == null || n.load().queuedPromptTokens() == 0),
        "prefill nodes to report an empty queue");
  }

  static long queries(WorkerNode w) {
    return w.prefill().prefixCacheQueries();
  }

  static long hits(WorkerNode w) {
    return w.prefill().prefixCacheHits();
  }

  @Test
  void aSecondRequestSharingALongPrefixSkipsItsComputeOnTheNodeHoldingItAndMatchesTheReference() {
    String prefix = text("You are the pdserve assistant; answer briefly and cite the design", 330);
    long[] before =
        cluster.prefill.stream().mapToLong(PrefixAndLeaseClusterTest::queries).toArray();
    generateMatchingReference(raw("shared-1", prefix + " Q: what moves the KV?", 6));
    WorkerNode holder =
        queries(cluster.prefill.get(0)) > before[0]
            ? cluster.prefill.get(0)
            : cluster.prefill.get(1);
    WorkerNode other =
        cluster.prefill.get(0) == holder ? cluster.prefill.get(1) : cluster.prefill.get(0);
    long holderHits = hits(holder);
    long otherQueries = queries(other);

    // The router weighs cached tokens against queued ones: let the load the nodes publish (every
    // 200 ms) settle after earlier tests, so the choice below is about the prefix alone.
    awaitPrefillIdleInRoutersView();
    InJvmCluster.Result second =
        generateMatchingReference(raw("shared-2", prefix + " Q: and who routes it?", 6));
    int cached = second.completion().getUsage().getCachedTokens();
    assertTrue(
        cached >= 320,
        "the shared 330-character prefix (20 full blocks) must come from the cache, got "
            + cached
            + " cached tokens");
    assertEquals(
        holderHits + cached,
        hits(holder),
        "the holder's prefix_cache_hits must grow by the completion's cached tokens");
    assertEquals(
        otherQueries,
        queries(other),
        "the router must send the prompt to the node holding its prefix");
    assertTrue(cluster.router.router().prefixRoutedRequests() >= 1);
  }

  @Test
  void evictionUnderPressureKeepsServingCorrectlyAndEveryBlockEndsFreeOrCached() {
    long evictedBefore = evicted();
    List<GenerateRequest> sent = new ArrayList<>();
    for (int i = 0; i < 8; i++) { // 8 × 25 blocks over two pools of 64: some node must evict
      GenerateRequest r =
          raw("evict-" + i, text("distinct prompt number " + i + " about paged KV", 400), 4);
      sent.add(r);
      generateMatchingReference(r);
    }
    assertTrue(
        evicted() > evictedBefore, "the small prefill pools must have evicted cached blocks");
    generateMatchingReference(
        sent.get(0).toBuilder().setRequestId("evict-again").build()); // partly evicted: still right
    cluster.awaitNoKvHeld();
    for (WorkerNode w : cluster.prefill) {
      PrefixCache cache = w.prefill().prefixCache();
      assertEquals(
          0, cache.pinnedBlocks(), w.id() + ": no prompt is running, nothing may be pinned");
      assertEquals(
          w.pool().totalBlocks(),
          w.pool().freeBlocks() + w.pool().cachedBlocks(),
          w.id() + ": a block is neither free nor cached: leaked");
      cache.clear();
      assertEquals(
          w.pool().totalBlocks(),
          w.pool().freeBlocks(),
          w.id() + ": after clearing the cache every block must be free");
    }
  }

  static long evicted() {
    return cluster.prefill.stream()
        .mapToLong(w -> w.prefill().prefixCache().stats().evictedBlocks())
        .sum();
  }

  @Test
  void aShortPromptIsPrefilledOnTheDecodeNodeAndEqualsTheReference() {
    WorkerNode d = cluster.decode.get(0);
    long local = d.decode().localPrefills();
    long prefillQueries =
        cluster.prefill.stream().mapToLong(PrefixAndLeaseClusterTest::queries).sum();
    generateMatchingReference(raw("short", "Hi, decode node!", 10));
    assertEquals(
        local + 1,
        d.decode().localPrefills(),
        "a prompt under router.local-prefill-threshold is prefilled by the decode node");
    assertEquals(
        prefillQueries,
        cluster.prefill.stream().mapToLong(PrefixAndLeaseClusterTest::queries).sum(),
        "no prefill node saw it");
    assertEquals(local + 1, d.status().getLocalPrefills());

    generateMatchingReference(raw("not-short", text("a prompt longer than the threshold", 80), 4));
    assertEquals(local + 1, d.decode().localPrefills(), "a longer prompt goes to a prefill node");
  }

  @Test
  void aRequestOutlivingSeveralLeasesIsKeptAliveByTheRouter() {
    WorkerNode d = cluster.decode.get(0);
    long expired = d.decode().leasesExpired();
    InJvmCluster.Result r =
        generateMatchingReference(
            GenerateRequest.newBuilder(raw("long-decode", text("tell a long story", 60), 600))
                .setParams(
                    SamplingParams.newBuilder()
                        .setTemperature(0)
                        .setMaxTokens(600)
                        .setIgnoreEos(true))
                .build());
    assertEquals(600, r.tokenIds().length);
    assertEquals(expired, d.decode().leasesExpired(), "a renewed lease must not expire");
  }

  @Test
  void abortFreesTheRequestsKvOnEveryNodeAtOnce() throws Exception {
    CountDownLatch streaming = new CountDownLatch(1);
    CompletableFuture<Completion> done = new CompletableFuture<>();
    GenerationGrpc.newStub(cluster.channel)
        .generate(
            GenerateRequest.newBuilder(raw("to-abort", text("a long answer please", 120), 900))
                .setParams(
                    SamplingParams.newBuilder()
                        .setTemperature(0)
                        .setMaxTokens(900)
                        .setIgnoreEos(true))
                .build(),
            new StreamObserver<>() {
              @Override
              public void onNext(GenerateResponse r) {
                if (r.hasDelta()) {
                  streaming.countDown();
                } else if (r.hasCompletion()) {
                  done.complete(r.getCompletion());
                }
              }

              @Override
              public void onError(Throwable t) {
                done.completeExceptionally(t);
              }

              @Override
              public void onCompleted() {}
            });
    assertTrue(streaming.await(30, TimeUnit.SECONDS), "no tokens streamed");
    assertTrue(InJvmCluster.heldBlocks(cluster.decode.get(0)) > 0, "the decoding request holds KV");
    long expiredBefore = cluster.decode.get(0).decode().leasesExpired();
    assertTrue(
        GenerationGrpc.newBlockingStub(cluster.channel)
            .abort(AbortRequest.newBuilder().setRequestId("to-abort").build())
            .getFound());
    assertEquals("abort", done.get(10, TimeUnit.SECONDS).getFinishReason());
    // A generous bound, not a speed requirement: that the Abort itself freed the KV, not its 1 s
    // lease running out, is checked on the lease count.
    InJvmCluster.await(
        Duration.ofSeconds(30),
        () ->
            cluster.decode.stream().allMatch(w -> InJvmCluster.heldBlocks(w) == 0)
                && cluster.prefill.stream().allMatch(w -> InJvmCluster.heldBlocks(w) == 0),
        "Abort to free the KV on every node");
    assertEquals(
        expiredBefore,
        cluster.decode.get(0).decode().leasesExpired(),
        "the KV was freed by its lease running out, not by the Abort");
  }

  @Test
  void aReservationWhoseRouterVanishedIsFreedAtLeaseExpiry() {
    WorkerNode d = cluster.decode.get(0);
    long expired = d.decode().leasesExpired();
    ManagedChannel ch = NettyChannelBuilder.forTarget(d.grpcAddress()).usePlaintext().build();
    try {
      // A "router" reserves KV, then is never heard of again: no renewal, no join, no release.
      ReserveResponse r =
          DecodeServiceGrpc.newBlockingStub(ch)
              .withDeadlineAfter(10, TimeUnit.SECONDS)
              .reserve(
                  ReserveRequest.newBuilder()
                      .setRequestId("vanished")
                      .setPromptTokens(100)
                      .setMaxTokens(100)
                      .build());
      assertEquals(1000, r.getLeaseMillis(), "the reservation carries the configured 1 s lease");
      assertEquals(
          r.getBlocks(),
          d.status().getKvReservedBlocks(),
          "the status RPC reports the blocks reservations hold");
      assertTrue(InJvmCluster.heldBlocks(d) >= r.getBlocks());
    } finally {
      ch.shutdownNow();
    }
    // Freed by the lease (1 s), not the 120 s TTL: the lease count below says which.
    InJvmCluster.await(
        Duration.ofSeconds(60),
        () -> InJvmCluster.heldBlocks(d) == 0,
        "the orphaned reservation to be freed at lease expiry");
    assertEquals(expired + 1, d.decode().leasesExpired());
    assertEquals(0, d.status().getKvReservedBlocks());
  }
}
