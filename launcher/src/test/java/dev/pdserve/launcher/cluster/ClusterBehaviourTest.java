package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.api.v1.Completion;
import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.api.v1.SamplingParams;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.internal.v1.NodeServiceGrpc;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.internal.v1.StatusRequest;
import dev.pdserve.launcher.node.RouterNode;
import dev.pdserve.launcher.node.WorkerNode;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.router.RouterOptions;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** A 2P/2D cluster in this JVM: concurrency, batching, cancellation, errors, no KV leaks. */
class ClusterBehaviourTest {
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

  @AfterEach
  void noKvLeaks() {
    cluster.awaitNoKvHeld();
  }

  /** Collects one streamed generation asynchronously. */
  static CompletableFuture<InJvmCluster.Result> async(ManagedChannel ch, GenerateRequest req) {
    CompletableFuture<InJvmCluster.Result> f = new CompletableFuture<>();
    GenerationGrpc.newStub(ch)
        .withDeadlineAfter(120, TimeUnit.SECONDS)
        .generate(
            req,
            new StreamObserver<>() {
              final List<Integer> ids = new ArrayList<>();
              final StringBuilder text = new StringBuilder();
              Completion completion;

              @Override
              public void onNext(GenerateResponse r) {
                if (r.hasDelta()) {
                  ids.addAll(r.getDelta().getTokenIdsList());
                  text.append(r.getDelta().getText());
                } else {
                  completion = r.getCompletion();
                }
              }

              @Override
              public void onError(Throwable t) {
                f.completeExceptionally(t);
              }

              @Override
              public void onCompleted() {
                f.complete(
                    new InJvmCluster.Result(
                        ids.stream().mapToInt(Integer::intValue).toArray(),
                        text.toString(),
                        completion));
              }
            });
    return f;
  }

  @Test
  void sixtyFourConcurrentRequestsAllMatchTheReferenceAndDecodeBatchesForm() throws Exception {
    int n = 64;
    List<String> prompts = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      prompts.add(
          "request " + i + ": " + "abcdefghij".substring(0, 1 + i % 10) + " ✓".repeat(i % 3));
    }
    List<CompletableFuture<InJvmCluster.Result>> futures = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      futures.add(async(cluster.channel, Greedy.request("c" + i, prompts.get(i), 16)));
    }
    for (int i = 0; i < n; i++) {
      InJvmCluster.Result r = futures.get(i).get(120, TimeUnit.SECONDS);
      assertNotNull(r.completion(), "request " + i + " ended without a completion");
      assertEquals("length", r.completion().getFinishReason());
      assertArrayEquals(
          Greedy.referenceTokens(reference, prompts.get(i), 16),
          r.tokenIds(),
          "request " + i + " differs from the reference");
    }
    int maxBatch = 0;
    for (WorkerNode d : cluster.decode) {
      NodeStatus s = status(d.grpcAddress());
      assertEquals("decode", s.getRole());
      maxBatch = Math.max(maxBatch, s.getMaxBatchSizeSeen());
    }
    assertTrue(
        maxBatch > 1,
        "decode batches should form under 64 concurrent requests; max batch seen " + maxBatch);
  }

  static NodeStatus status(String address) {
    ManagedChannel ch = NettyChannelBuilder.forTarget(address).usePlaintext().build();
    try {
      return NodeServiceGrpc.newBlockingStub(ch)
          .withDeadlineAfter(10, TimeUnit.SECONDS)
          .status(StatusRequest.getDefaultInstance());
    } finally {
      ch.shutdownNow();
    }
  }

  @Test
  void cancellingAStreamMidwayFreesItsKvOnPrefillAndDecode() throws Exception {
    CountDownLatch gotTokens = new CountDownLatch(3);
    CompletableFuture<Throwable> ended = new CompletableFuture<>();
    ClientCallStreamObserver<?>[] call = new ClientCallStreamObserver<?>[1];
    GenerationGrpc.newStub(cluster.channel)
        .generate(
            Greedy.request("to-cancel", "cancel me please", 900),
            new ClientResponseObserver<GenerateRequest, GenerateResponse>() {
              @Override
              public void beforeStart(ClientCallStreamObserver<GenerateRequest> s) {
                call[0] = s;
              }

              @Override
              public void onNext(GenerateResponse r) {
                gotTokens.countDown();
              }

              @Override
              public void onError(Throwable t) {
                ended.complete(t);
              }

              @Override
              public void onCompleted() {
                ended.complete(null);
              }
            });
    assertTrue(gotTokens.await(30, TimeUnit.SECONDS), "no tokens streamed");
    assertTrue(heldBlocks() > 0, "the running request should hold KV blocks");
    long expiredBefore = leasesExpired();
    call[0].cancel("test cancels", null);
    // A generous bound, not a speed requirement; that the cancel freed the KV (and not a lease
    // running out later) is checked on the leases.
    InJvmCluster.await(
        Duration.ofSeconds(30), () -> heldBlocks() == 0, "KV to be freed after the cancel");
    assertEquals(
        expiredBefore, leasesExpired(), "a lease ran out: the cancel did not free the KV itself");
    assertEquals(
        Status.Code.CANCELLED, Status.fromThrowable(ended.get(5, TimeUnit.SECONDS)).getCode());
  }

  static long leasesExpired() {
    return cluster.decode.stream().mapToLong(w -> w.decode().leasesExpired()).sum();
  }

  static int heldBlocks() {
    int held = 0;
    for (WorkerNode w : cluster.prefill) {
      held += InJvmCluster.heldBlocks(w);
    }
    for (WorkerNode w : cluster.decode) {
      held += InJvmCluster.heldBlocks(w);
    }
    return held;
  }

  static StatusRuntimeException failure(GenerateRequest req) {
    return assertThrows(
        StatusRuntimeException.class,
        () -> {
          Iterator<GenerateResponse> it = cluster.blocking().generate(req);
          while (it.hasNext()) {
            it.next();
          }
        });
  }

  static void assertStatus(Status.Code code, String message, GenerateRequest req) {
    StatusRuntimeException e = failure(req);
    assertEquals(code, e.getStatus().getCode(), e.getStatus().toString());
    assertTrue(
        e.getStatus().getDescription() != null && e.getStatus().getDescription().contains(message),
        "expected '" + message + "' in: " + e.getStatus().getDescription());
  }

  @Test
  void badRequestsGetInvalidArgumentWithAnActionableMessageAndTheClusterStaysUp() {
    assertStatus(
        Status.Code.INVALID_ARGUMENT,
        "temperature must be >= 0",
        Greedy.request("bad1", "hi", 4).toBuilder()
            .setParams(SamplingParams.newBuilder().setTemperature(-1))
            .build());
    assertStatus(
        Status.Code.INVALID_ARGUMENT,
        "top_p must be in (0, 1]",
        Greedy.request("bad2", "hi", 4).toBuilder()
            .setParams(SamplingParams.newBuilder().setTopP(0))
            .build());
    assertStatus(
        Status.Code.INVALID_ARGUMENT,
        "max_tokens must be >= 1",
        Greedy.request("bad3", "hi", 4).toBuilder()
            .setParams(SamplingParams.newBuilder().setMaxTokens(0))
            .build());
    assertStatus(
        Status.Code.INVALID_ARGUMENT,
        "maximum context length is 1024 tokens",
        Greedy.request("bad4", "x".repeat(1100), 4));
    assertStatus(
        Status.Code.INVALID_ARGUMENT,
        "set one of messages, prompt or prompt_token_ids",
        GenerateRequest.newBuilder().setRequestId("bad5").build());
    assertStatus(Status.Code.INVALID_ARGUMENT, "prompt is empty", Greedy.request("bad6", "", 4));
    assertStatus(
        Status.Code.NOT_FOUND,
        "is not served here",
        Greedy.request("bad7", "hi", 4).toBuilder().setModel("gpt-4").build());
    // still serving
    assertNotNull(cluster.generate(Greedy.request("after-bad", "still there?", 3)).completion());
  }

  @Test
  void anExpiredDeadlineEndsTheRequestWithDeadlineExceededAndFreesItsKv() {
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () -> {
              Iterator<GenerateResponse> it =
                  GenerationGrpc.newBlockingStub(cluster.channel)
                      .withDeadlineAfter(300, TimeUnit.MILLISECONDS)
                      .generate(Greedy.request("slow", "a long answer please", 1000));
              while (it.hasNext()) {
                it.next();
              }
            });
    assertEquals(Status.Code.DEADLINE_EXCEEDED, e.getStatus().getCode());
    cluster.awaitNoKvHeld();
    assertNotNull(
        cluster.generate(Greedy.request("after-deadline", "still there?", 3)).completion());
  }

  @Test
  void noActiveNodeOfARoleGivesUnavailableNamingTheRole() throws Exception {
    NodeRegistry registry = new NodeRegistry(cluster.decode.get(0).member().hazelcast());
    List<NodeInfo> drained = new ArrayList<>();
    try {
      for (WorkerNode p : cluster.prefill) {
        NodeInfo n = registry.get(p.id()).orElseThrow();
        drained.add(
            registry
                .compareAndSet(p.id(), n.epoch(), NodeState.ACTIVE, null, NodeState.DRAINING)
                .node());
      }
      InJvmCluster.await(
          Duration.ofSeconds(30),
          () -> cluster.router.directory().active(NodeRole.PREFILL).isEmpty(),
          "router to see no ACTIVE prefill node");
      assertStatus(
          Status.Code.UNAVAILABLE, "no ACTIVE prefill node", Greedy.request("unavail", "hi", 4));
    } finally {
      for (NodeInfo n : drained) {
        registry.compareAndSet(n.id(), n.epoch(), NodeState.DRAINING, null, NodeState.ACTIVE);
      }
      registry.close();
    }
    cluster.awaitRouterSees(2, 2);
    assertNotNull(cluster.generate(Greedy.request("after-unavailable", "back?", 3)).completion());
  }

  @Test
  void aFullRouterQueueGivesResourceExhaustedWithARetryHint() throws Exception {
    try (RouterNode small =
        RouterNode.start(
            cluster.config("router", "router-small", Map.of("cluster.lite-member", "true")),
            new RouterOptions(1, 0, 2))) {
      InJvmCluster.await(
          Duration.ofSeconds(20),
          () ->
              small.directory().active(NodeRole.DECODE).size() == 2
                  && small.directory().active(NodeRole.PREFILL).size() == 2,
          "the second router to see the cluster");
      ManagedChannel ch = NettyChannelBuilder.forTarget(small.grpcAddress()).usePlaintext().build();
      try {
        CompletableFuture<InJvmCluster.Result> first =
            async(ch, Greedy.request("occupies", "hold the only slot", 200));
        InJvmCluster.await(
            Duration.ofSeconds(10),
            () -> small.router().inFlight() == 1,
            "the first request to be in flight");
        StatusRuntimeException e =
            assertThrows(
                StatusRuntimeException.class,
                () -> {
                  Iterator<GenerateResponse> it =
                      GenerationGrpc.newBlockingStub(ch)
                          .withDeadlineAfter(30, TimeUnit.SECONDS)
                          .generate(Greedy.request("refused", "me too", 4));
                  while (it.hasNext()) {
                    it.next();
                  }
                });
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode());
        assertTrue(
            e.getStatus().getDescription().contains("retry after"), e.getStatus().getDescription());
        assertNotNull(first.get(60, TimeUnit.SECONDS).completion());
      } finally {
        ch.shutdownNow();
      }
    }
  }
}
