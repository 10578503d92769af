package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.api.v1.Completion;
import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.launcher.node.WorkerNode;
import dev.pdserve.model.engine.ExpertBackend;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.engine.RoutedBatch;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.router.RouterMetrics;
import dev.pdserve.router.RouterOptions;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * Overload refused early (issue 14): far more concurrent requests than a 1P/1D cluster could start
 * within {@code pdserve.router.max-queue-delay}. The prefill node is held (its experts behind a
 * gate) until every request has been answered or admitted, so no first token can come before the
 * router has decided them all: those forecast to wait past the bound are refused with
 * RESOURCE_EXHAUSTED, saying the forecast and when to retry, before any admitted one has a token;
 * every admitted one then completes with the single-process engine's tokens, and nothing is kept
 * for the refused ones.
 */
class OverloadRefusalTest {
  private static final int REQUESTS = 24;
  private static final int MAX_TOKENS = 16;
  private static final Duration HANG_GUARD = Duration.ofSeconds(120);

  @Test
  void requestsThatWouldWaitPastTheBoundAreRefusedAtOnceAndTheAdmittedKeepTheirAnswers()
      throws Exception {
    GatedExperts gate = new GatedExperts();
    try (LoadedModel model = LoadedModel.load(ModelSpec.preset("tiny"));
        ReferenceEngine reference = new ReferenceEngine(model, OrtRuntime.shared());
        InJvmCluster cluster = new InJvmCluster()) {
      // assumed 200 prompt tokens/s until measured, and 1 s allowed: about 200 tokens ahead
      cluster.set("router.max-queue-delay", "1s").set("router.prefill-tokens-per-second", "200");
      cluster.addWorker("decode", Map.of("experts.mode", "local"));
      cluster.prefill.add(
          WorkerNode.start(
              cluster.config("prefill", "p0", Map.of("experts.mode", "local")),
              cluster.allocator,
              WorkerNode.ExpertBackendFactory.fromConfig().andThen(gate::around)));
      cluster.startRouter(RouterOptions.defaults());
      cluster.awaitRouterSees(1, 1);
      try {
        gate.shut();
        AtomicLong events = new AtomicLong();
        List<String> prompts = new ArrayList<>();
        List<Outcome> outcomes = new ArrayList<>();
        for (int i = 0; i < REQUESTS; i++) {
          // above the local-prefill threshold: every prompt goes to the held prefill node
          prompts.add(String.format("%02d", i) + " overload ".repeat(10));
          outcomes.add(
              Outcome.start(
                  cluster, Greedy.request("load" + i, prompts.get(i), MAX_TOKENS), events));
        }
        InJvmCluster.await(
            HANG_GUARD,
            () ->
                outcomes.stream().filter(Outcome::refused).count()
                        + cluster.router.router().inFlight()
                    == REQUESTS,
            "every request refused or admitted");
        long refused = outcomes.stream().filter(Outcome::refused).count();
        int admitted = cluster.router.router().inFlight();
        assertTrue(refused > 0, "the overload must refuse some requests");
        assertTrue(admitted > 0, "and admit some");
        gate.open();

        long firstTokenOfAny = Long.MAX_VALUE;
        for (int i = 0; i < REQUESTS; i++) {
          Outcome o = outcomes.get(i);
          o.end.get(HANG_GUARD.toSeconds(), TimeUnit.SECONDS);
          if (o.refused()) {
            Status s = o.error;
            assertEquals(Status.Code.RESOURCE_EXHAUSTED, s.getCode(), s.toString());
            assertTrue(
                // the forecast's refusal, or (on a slow machine, if the held requests pass the
                // admission window's target before the forecast refuses) the window's
                (s.getDescription().startsWith("router overloaded: a new request would wait about ")
                        || s.getDescription()
                            .matches("router overloaded: \\d+ requests are waiting for .*"))
                    && s.getDescription().contains("pdserve.router.max-queue-delay); retry after "),
                s.getDescription());
          } else {
            assertNotNull(o.completion, "load" + i + " ended without a completion: " + o.error);
            assertArrayEquals(
                Greedy.referenceTokens(reference, prompts.get(i), MAX_TOKENS),
                o.tokenIds(),
                "load" + i + " differs from the reference engine");
            firstTokenOfAny = Math.min(firstTokenOfAny, o.firstTokenEvent);
          }
        }
        for (Outcome o : outcomes) {
          if (o.refused()) {
            assertTrue(
                o.endEvent < firstTokenOfAny,
                "a refusal came after an admitted request's first token: not refused at once");
          }
        }
        assertEquals(
            refused,
            (long)
                DecodeNodeCrashTest.routerCounter(
                    cluster, "pdserve_request_rejections_total", RouterMetrics.REJECT_OVERLOADED),
            "each refusal counted as overloaded");
        assertEquals(0, cluster.router.router().inFlight());
        cluster.awaitNoKvHeld();
      } finally {
        gate.open(); // never leave the prefill node stuck when the cluster closes
      }
    }
  }

  /** One request's end as the client sees it, with the order of its events among all. */
  static final class Outcome implements StreamObserver<GenerateResponse> {
    private final AtomicLong events;
    private final List<Integer> tokens = new ArrayList<>(); // guarded by this
    final CompletableFuture<Void> end = new CompletableFuture<>();
    volatile long firstTokenEvent = Long.MAX_VALUE;
    volatile long endEvent;
    volatile Status error;
    volatile Completion completion;

    private Outcome(AtomicLong events) {
      this.events = events;
    }

    static Outcome start(InJvmCluster cluster, GenerateRequest r, AtomicLong events) {
      Outcome o = new Outcome(events);
      GenerationGrpc.newStub(cluster.channel)
          .withDeadlineAfter(HANG_GUARD.toSeconds(), TimeUnit.SECONDS)
          .generate(r, o);
      return o;
    }

    boolean refused() {
      Status s = error;
      return s != null && s.getCode() == Status.Code.RESOURCE_EXHAUSTED;
    }

    @Override
    public synchronized void onNext(GenerateResponse r) {
      if (r.hasDelta() && r.getDelta().getTokenIdsCount() > 0) {
        if (tokens.isEmpty()) {
          firstTokenEvent = events.incrementAndGet();
        }
        tokens.addAll(r.getDelta().getTokenIdsList());
      } else if (r.hasCompletion()) {
        completion = r.getCompletion();
      }
    }

    @Override
    public void onError(Throwable t) {
      endEvent = events.incrementAndGet();
      error = Status.fromThrowable(t);
      end.complete(null);
    }

    @Override
    public void onCompleted() {
      endEvent = events.incrementAndGet();
      end.complete(null);
    }

    synchronized int[] tokenIds() {
      return tokens.stream().mapToInt(Integer::intValue).toArray();
    }
  }

  /** Routed experts behind a gate: while shut, every forward pass waits at its first MoE layer. */
  static final class GatedExperts {
    private boolean shut; // guarded by this

    ExpertBackend around(ExpertBackend delegate) {
      return (RoutedBatch batch) -> {
        synchronized (this) {
          while (shut) {
            try {
              wait();
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
              throw new IllegalStateException("interrupted at the experts' gate", e);
            }
          }
        }
        return delegate.routed(batch);
      };
    }

    synchronized void shut() {
      shut = true;
    }

    synchronized void open() {
      shut = false;
      notifyAll();
    }
  }
}
