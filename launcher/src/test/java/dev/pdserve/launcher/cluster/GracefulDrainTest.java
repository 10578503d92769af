package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.pdserve.api.v1.Completion;
import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.coordination.RoleSwitchRequest;
import dev.pdserve.core.coordination.RoleSwitchResult;
import dev.pdserve.core.metrics.MetricNames;
import dev.pdserve.launcher.metrics.PrometheusText;
import dev.pdserve.launcher.node.DrainPhase;
import dev.pdserve.launcher.node.DrainSummary;
import dev.pdserve.launcher.node.RouterNode;
import dev.pdserve.launcher.node.WorkerNode;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.router.RouterOptions;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Graceful shutdown (what SIGTERM does) on a 2P/2D cluster in this JVM with real servers: worker
 * health names through a role switch; a decode worker drained while greedy streams run through it
 * (readiness NOT_SERVING first, streams migrated and exact, the node gone from the registry, no KV
 * held); a router drained while a stream runs through it (the stream completes, new gRPC and HTTP
 * requests are refused saying it is shutting down); and the last decode node, which has nowhere to
 * migrate, ending its stream with one clear UNAVAILABLE. The tests run in order: each starts from
 * the cluster the one before left.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class GracefulDrainTest {
  static InJvmCluster cluster;
  static LoadedModel model;
  static ReferenceEngine reference;
  static final List<AutoCloseable> extra = new ArrayList<>();

  @BeforeAll
  static void start() throws Exception {
    cluster = InJvmCluster.start(2, 2);
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    reference = new ReferenceEngine(model, OrtRuntime.shared());
  }

  @AfterAll
  static void stop() throws Exception {
    for (AutoCloseable c : extra) {
      c.close();
    }
    if (cluster != null) {
      cluster.close(); // its allocator check fails on any KV memory a drain leaked
    }
    if (reference != null) {
      reference.close();
      model.close();
    }
  }

  /** The worker's {@code pdserve_worker_role} for prefill and decode, scraped from /metrics. */
  static List<Double> liveRole(WorkerNode w) throws Exception {
    String body =
        HttpClient.newHttpClient()
            .send(
                HttpRequest.newBuilder(URI.create(w.metrics().url())).build(),
                HttpResponse.BodyHandlers.ofString())
            .body();
    PrometheusText t = PrometheusText.parse(body);
    return List.of(
        t.sum(MetricNames.WORKER_ROLE, Map.of(MetricNames.ROLE, "prefill")),
        t.sum(MetricNames.WORKER_ROLE, Map.of(MetricNames.ROLE, "decode")));
  }

  static ManagedChannel channel(String address) {
    return NettyChannelBuilder.forTarget(address).usePlaintext().build();
  }

  /** grpc.health.v1 Check of {@code service} on the node at {@code address}, a fresh channel. */
  static ServingStatus health(String address, String service) {
    ManagedChannel ch = channel(address);
    try {
      return HealthGrpc.newBlockingStub(ch)
          .withDeadlineAfter(10, TimeUnit.SECONDS)
          .check(HealthCheckRequest.newBuilder().setService(service).build())
          .getStatus();
    } finally {
      ch.shutdownNow();
    }
  }

  /** A Generate stream as it happens: its first token, then its end. */
  record Stream(CompletableFuture<Void> firstToken, CompletableFuture<InJvmCluster.Result> done) {}

  static Stream stream(ManagedChannel ch, GenerateRequest req) {
    CompletableFuture<Void> first = new CompletableFuture<>();
    CompletableFuture<InJvmCluster.Result> done = new CompletableFuture<>();
    GenerationGrpc.newStub(ch)
        .withDeadlineAfter(120, TimeUnit.SECONDS)
        .generate(
            req,
            new StreamObserver<>() {
              final List<Integer> ids = new ArrayList<>();
              Completion completion;

              @Override
              public void onNext(GenerateResponse r) {
                if (r.hasDelta()) {
                  ids.addAll(r.getDelta().getTokenIdsList());
                  first.complete(null);
                } else {
                  completion = r.getCompletion();
                }
              }

              @Override
              public void onError(Throwable t) {
                first.completeExceptionally(t);
                done.completeExceptionally(t);
              }

              @Override
              public void onCompleted() {
                done.complete(
                    new InJvmCluster.Result(
                        ids.stream().mapToInt(Integer::intValue).toArray(), "", completion));
              }
            });
    return new Stream(first, done);
  }

  static List<WorkerNode> decodeWorkers() {
    List<WorkerNode> all = new ArrayList<>(cluster.prefill);
    all.addAll(cluster.decode);
    return all.stream().filter(w -> w.role() == NodeRole.DECODE).toList();
  }

  static void forget(WorkerNode w) {
    cluster.prefill.remove(w);
    cluster.decode.remove(w);
  }

  /** Runs {@code body} in a drain listener: records what it saw, never throws into the drain. */
  static void record(List<String> seen, ThrowingRunnable body) {
    try {
      body.run();
    } catch (Throwable t) {
      seen.add("listener failed: " + t);
    }
  }

  interface ThrowingRunnable {
    void run() throws Exception;
  }

  @Test
  @Order(1)
  void workerHealthNamesFollowARoleSwitchWhilePdserveWorkerStaysServing() throws Exception {
    WorkerNode p1 = cluster.prefill.get(1);
    String addr = p1.grpcAddress();
    assertEquals(ServingStatus.SERVING, health(addr, NodeRole.WORKER_HEALTH_SERVICE));
    assertEquals(ServingStatus.SERVING, health(addr, "pdserve.prefill"));
    assertEquals(ServingStatus.NOT_SERVING, health(addr, "pdserve.decode"));
    assertEquals(ServingStatus.SERVING, health(addr, ""));
    String d0 = cluster.decode.get(0).grpcAddress();
    assertEquals(ServingStatus.SERVING, health(d0, NodeRole.WORKER_HEALTH_SERVICE));
    assertEquals(ServingStatus.SERVING, health(d0, "pdserve.decode"));
    assertEquals(ServingStatus.NOT_SERVING, health(d0, "pdserve.prefill"));

    // Watch pdserve.worker through the switch: a Watch reports every change.
    List<ServingStatus> watched = new CopyOnWriteArrayList<>();
    CountDownLatch firstReport = new CountDownLatch(1);
    ManagedChannel ch = channel(addr);
    Context.CancellableContext watch = Context.current().withCancellation();
    try {
      watch.run(
          () ->
              HealthGrpc.newStub(ch)
                  .watch(
                      HealthCheckRequest.newBuilder()
                          .setService(NodeRole.WORKER_HEALTH_SERVICE)
                          .build(),
                      new StreamObserver<HealthCheckResponse>() {
                        @Override
                        public void onNext(HealthCheckResponse r) {
                          watched.add(r.getStatus());
                          firstReport.countDown();
                        }

                        @Override
                        public void onError(Throwable t) {}

                        @Override
                        public void onCompleted() {}
                      }));
      assertTrue(firstReport.await(10, TimeUnit.SECONDS), "the health Watch never reported");

      assertEquals(List.of(1.0, 0.0), liveRole(p1), "pdserve_worker_role{prefill, decode}");
      RoleSwitchResult r =
          p1.switcher().switchRole(new RoleSwitchRequest("p1", NodeRole.DECODE, 0, "test"));
      assertTrue(r.accepted(), r.message());
      assertEquals(List.of(0.0, 1.0), liveRole(p1), "the live-role gauge follows the switch");

      assertEquals(ServingStatus.SERVING, health(addr, NodeRole.WORKER_HEALTH_SERVICE));
      assertEquals(ServingStatus.NOT_SERVING, health(addr, "pdserve.prefill"));
      assertEquals(ServingStatus.SERVING, health(addr, "pdserve.decode"));
      assertEquals(
          List.of(ServingStatus.SERVING),
          watched,
          "pdserve.worker must stay SERVING through the role switch");
    } finally {
      watch.cancel(null);
      ch.shutdownNow();
    }
    cluster.awaitRouterSees(1, 3);
  }

  @Test
  @Order(2)
  void drainedDecodeWorkerGoesNotServingMigratesItsStreamsExactlyAndLeaves() throws Exception {
    int maxTokens = 800;
    List<String> prompts = new ArrayList<>();
    List<Stream> streams = new ArrayList<>();
    for (int i = 0; i < 4; i++) {
      prompts.add("drain " + i + ": move me");
      streams.add(stream(cluster.channel, Greedy.request("drain" + i, prompts.get(i), maxTokens)));
    }
    for (Stream s : streams) {
      s.firstToken().get(60, TimeUnit.SECONDS);
    }
    InJvmCluster.await(
        Duration.ofSeconds(30),
        () -> decodeWorkers().stream().anyMatch(w -> w.decode().stats().running() > 0),
        "a decode worker to be decoding");
    WorkerNode w =
        decodeWorkers().stream()
            .max(Comparator.comparingInt(n -> n.decode().stats().running()))
            .orElseThrow();
    WorkerNode survivor = decodeWorkers().stream().filter(n -> n != w).findFirst().orElseThrow();
    long followedBefore = cluster.router.router().migrationsFollowed();

    List<String> seen = new CopyOnWriteArrayList<>();
    w.onDrainPhase(
        phase -> {
          if (phase == DrainPhase.DRAINING) {
            record(
                seen,
                () -> {
                  String a = w.grpcAddress();
                  seen.add("worker=" + health(a, NodeRole.WORKER_HEALTH_SERVICE));
                  seen.add("decode=" + health(a, "pdserve.decode"));
                  seen.add("overall=" + health(a, ""));
                  seen.add("registry=" + w.status().getState());
                });
          }
        });
    DrainSummary summary = w.drainAndClose(Duration.ofSeconds(30), Duration.ZERO);

    assertEquals(
        List.of("worker=NOT_SERVING", "decode=NOT_SERVING", "overall=SERVING", "registry=DRAINING"),
        seen,
        "while draining: readiness names NOT_SERVING, liveness SERVING, entry DRAINING");
    assertTrue(summary.migrated() >= 1, "a running sequence should have migrated: " + summary);
    assertEquals(0, summary.failed(), summary.toString());
    for (int i = 0; i < streams.size(); i++) {
      InJvmCluster.Result r = streams.get(i).done().get(120, TimeUnit.SECONDS);
      assertNotNull(r.completion(), "stream " + i + " ended without a completion");
      assertEquals("length", r.completion().getFinishReason(), "stream " + i);
      assertArrayEquals(
          Greedy.referenceTokens(reference, prompts.get(i), maxTokens),
          r.tokenIds(),
          "stream " + i + " differs from the reference (lost, repeated or wrong tokens)");
    }
    assertTrue(
        cluster.router.router().migrationsFollowed() > followedBefore,
        "the router continued the migrated streams on another decode node");
    try (NodeRegistry registry = new NodeRegistry(survivor.member().hazelcast())) {
      assertTrue(registry.get(w.id()).isEmpty(), "the drained node deregistered");
    }
    InJvmCluster.await(
        Duration.ofSeconds(10),
        () -> cluster.router.directory().get(w.id()).isEmpty(),
        "the router's view to drop " + w.id());
    assertEquals(
        w.pool().totalBlocks(), w.pool().freeBlocks(), "the drained node freed every KV block");
    forget(w);
    cluster.awaitNoKvHeld();
  }

  @Test
  @Order(3)
  void drainedRouterFinishesItsStreamAndRefusesNewRequestsOnGrpcAndHttp() throws Exception {
    // Join through the members still up (the cluster's seed may be the worker drained before).
    List<WorkerNode> up = new ArrayList<>(cluster.prefill);
    up.addAll(cluster.decode);
    String members =
        String.join(",", up.stream().map(w -> w.member().hazelcastAddress().toString()).toList());
    RouterNode r2 =
        RouterNode.start(
            cluster.config(
                "router",
                "router2",
                Map.of("cluster.lite-member", "true", "cluster.members", members)),
            RouterOptions.defaults());
    extra.add(r2);
    InJvmCluster.await(
        Duration.ofSeconds(20),
        () ->
            r2.directory().active(NodeRole.PREFILL).size() == 1
                && r2.directory().active(NodeRole.DECODE).size() == 2,
        "router2 to see the cluster");
    ManagedChannel ch = channel(r2.grpcAddress());
    HttpClient http = HttpClient.newHttpClient();
    try {
      String prompt = "in flight while draining";
      Stream inFlight = stream(ch, Greedy.request("inflight", prompt, 600));
      inFlight.firstToken().get(60, TimeUnit.SECONDS);

      List<String> seen = new CopyOnWriteArrayList<>();
      r2.onDrainPhase(
          phase -> {
            if (phase != DrainPhase.DRAINING) {
              return;
            }
            record(
                seen,
                () -> {
                  seen.add("router=" + health(r2.grpcAddress(), "pdserve.router"));
                  seen.add("overall=" + health(r2.grpcAddress(), ""));
                  StatusRuntimeException e =
                      assertThrows(
                          StatusRuntimeException.class,
                          () ->
                              GenerationGrpc.newBlockingStub(ch)
                                  .withDeadlineAfter(30, TimeUnit.SECONDS)
                                  .generate(Greedy.request("late", "too late", 4))
                                  .hasNext());
                  seen.add(
                      "grpc " + e.getStatus().getCode() + ": " + e.getStatus().getDescription());
                  HttpResponse<String> chat =
                      http.send(
                          HttpRequest.newBuilder(URI.create(r2.httpUrl() + "/v1/chat/completions"))
                              .header("Content-Type", "application/json")
                              .POST(
                                  HttpRequest.BodyPublishers.ofString(
                                      "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}],"
                                          + " \"max_tokens\": 4}"))
                              .build(),
                          HttpResponse.BodyHandlers.ofString());
                  JsonNode error = new ObjectMapper().readTree(chat.body()).path("error");
                  seen.add("http " + chat.statusCode() + ": " + error.path("message").asText());
                  HttpResponse<String> healthz =
                      http.send(
                          HttpRequest.newBuilder(URI.create(r2.httpUrl() + "/health")).build(),
                          HttpResponse.BodyHandlers.ofString());
                  seen.add("http /health " + healthz.statusCode());
                });
          });
      DrainSummary summary = r2.drainAndClose(Duration.ofSeconds(60));

      String refusal = "router router2 is shutting down; retry on another replica";
      assertEquals(
          List.of(
              "router=NOT_SERVING",
              "overall=SERVING",
              "grpc UNAVAILABLE: " + refusal,
              "http 503: " + refusal,
              "http /health 503"),
          seen,
          "while the router drains");
      InJvmCluster.Result r = inFlight.done().get(60, TimeUnit.SECONDS);
      assertNotNull(r.completion(), "the in-flight stream ended without a completion");
      assertEquals("length", r.completion().getFinishReason());
      assertArrayEquals(
          Greedy.referenceTokens(reference, prompt, 600),
          r.tokenIds(),
          "the in-flight stream differs");
      assertEquals(0, summary.failed(), summary.toString());
      InJvmCluster.await(
          Duration.ofSeconds(10),
          () -> cluster.router.directory().get("router2").isEmpty(),
          "router2 to leave the registry");
    } finally {
      ch.shutdownNow();
    }
    cluster.awaitNoKvHeld();
  }

  @Test
  @Order(4)
  void lastDecodeNodeEndsWhatStillRunsWithOneClearUnavailableAndFreesItsKv() throws Exception {
    List<WorkerNode> decodes = decodeWorkers();
    assertEquals(2, decodes.size(), "decode workers left by the tests before");
    DrainSummary idle = decodes.get(0).drainAndClose(Duration.ofSeconds(5));
    assertEquals(0, idle.running() + idle.failed() + idle.migrated(), idle.toString());
    forget(decodes.get(0));
    WorkerNode last = decodes.get(1);
    cluster.awaitRouterSees(1, 1);

    Stream s = stream(cluster.channel, Greedy.request("last", "no way out", 1000));
    s.firstToken().get(60, TimeUnit.SECONDS);
    DrainSummary summary = last.drainAndClose(Duration.ofMillis(200));

    ExecutionException e =
        assertThrows(ExecutionException.class, () -> s.done().get(60, TimeUnit.SECONDS));
    StatusRuntimeException status = assertInstanceOf(StatusRuntimeException.class, e.getCause());
    assertEquals(Status.Code.UNAVAILABLE, status.getStatus().getCode(), status.toString());
    assertTrue(
        status.getStatus().getDescription().contains("node shutting down")
            && status.getStatus().getDescription().contains("last"),
        status.getStatus().getDescription());
    assertEquals(1, summary.failed(), summary.toString());
    assertEquals(0, summary.migrated(), summary.toString());
    assertEquals(
        last.pool().totalBlocks(), last.pool().freeBlocks(), "the ended sequence's KV was freed");
    forget(last);
  }
}
