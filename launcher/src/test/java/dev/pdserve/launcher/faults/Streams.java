package dev.pdserve.launcher.faults;

import dev.pdserve.api.v1.Completion;
import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.api.v1.SamplingParams;
import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/** Streams of the fault suite: what each received, when, and how it ended. */
final class Streams {
  private Streams() {}

  /**
   * The odd streams' sampling temperature. The tiny preset's logits are peaked: at 0.8 a sampled
   * stream still runs the same token for long stretches; at 1.5 it does not (the suite's default).
   */
  static volatile float sampledTemperature = 0.8f;

  /**
   * Request {@code i} of a run: even ones greedy, odd ones sampled at {@link #sampledTemperature}
   * with a fixed seed (sampling is stateless per step, so a migrated stream must continue exactly),
   * all for exactly {@code maxTokens} tokens.
   */
  static GenerateRequest request(String run, int i, int maxTokens) {
    SamplingParams.Builder p =
        SamplingParams.newBuilder().setMaxTokens(maxTokens).setIgnoreEos(true);
    if (i % 2 == 0) {
      p.setTemperature(0);
    } else {
      p.setTemperature(sampledTemperature).setTopP(0.95f).setSeed(1000 + i);
    }
    return GenerateRequest.newBuilder()
        .setRequestId(run + "-" + i)
        .setPrompt("fault suite stream " + i + ": " + PROMPTS[i % PROMPTS.length])
        .setParams(p)
        .build();
  }

  private static final String[] PROMPTS = {
    "the quick brown fox jumps over the lazy dog",
    "a migrated stream must neither lose nor repeat a token",
    "seeded sampling continues exactly on another node",
    "kill -9 of a decode worker in the middle of a long answer",
    "once upon a time in a cluster of separate processes",
    "0123456789 abcdefghijklmnopqrstuvwxyz",
    "prefill, decode, experts: every node its own JVM",
    "what the router does when a node stops answering",
  };

  /** One stream's record; times are from {@code clock} (nanoseconds). */
  static final class Stream implements StreamObserver<GenerateResponse> {
    final GenerateRequest request;
    final LongSupplier clock;
    final List<Integer> tokens = new ArrayList<>();
    final List<Long> arrivals = new ArrayList<>(); // one entry per token
    final CompletableFuture<Void> done = new CompletableFuture<>();
    volatile long startNanos;
    volatile long endNanos;
    volatile Completion completion;
    volatile Status error;

    Stream(GenerateRequest request, LongSupplier clock) {
      this.request = request;
      this.clock = clock;
    }

    void start(Channel channel, long deadlineSeconds) {
      startNanos = clock.getAsLong();
      GenerationGrpc.newStub(channel)
          .withDeadlineAfter(deadlineSeconds, TimeUnit.SECONDS)
          .generate(request, this);
    }

    @Override
    public synchronized void onNext(GenerateResponse r) {
      if (r.hasDelta()) {
        long now = clock.getAsLong();
        for (int t : r.getDelta().getTokenIdsList()) {
          tokens.add(t);
          arrivals.add(now);
        }
      } else if (r.hasCompletion()) {
        completion = r.getCompletion();
      }
    }

    @Override
    public void onError(Throwable t) {
      endNanos = clock.getAsLong();
      error = Status.fromThrowable(t);
      done.complete(null);
    }

    @Override
    public void onCompleted() {
      endNanos = clock.getAsLong();
      done.complete(null);
    }

    synchronized int[] tokenIds() {
      return tokens.stream().mapToInt(Integer::intValue).toArray();
    }

    synchronized int count() {
      return tokens.size();
    }

    /** Nanoseconds of the first token, or -1. */
    synchronized long firstTokenNanos() {
      return arrivals.isEmpty() ? -1 : arrivals.get(0);
    }

    /** The arrival of the first token after {@code t}, or -1 if none came. */
    synchronized long firstArrivalAfter(long t) {
      for (long a : arrivals) {
        if (a > t) {
          return a;
        }
      }
      return -1;
    }

    /** Tokens received by time {@code t}. */
    synchronized int countAt(long t) {
      int n = 0;
      for (long a : arrivals) {
        if (a <= t) {
          n++;
        }
      }
      return n;
    }

    boolean ok() {
      return error == null && completion != null;
    }

    String errorText() {
      if (error != null) {
        String d = error.getDescription();
        return error.getCode() + (d == null ? "" : ": " + d);
      }
      return completion == null ? "ended without a completion" : null;
    }
  }

  /**
   * How a stream's tokens compare to the reference: {@code same}, or at the first difference {@code
   * lost} (the rest is the reference shifted by one: a token skipped), {@code duplicated} (the
   * reference delayed by one: a token repeated), or {@code changed}.
   */
  static String compare(int[] ref, int[] got) {
    int k = 0;
    while (k < ref.length && k < got.length && ref[k] == got[k]) {
      k++;
    }
    if (k == ref.length && k == got.length) {
      return "same";
    }
    if (matches(got, k, ref, k + 1)) {
      return "lost";
    }
    if (matches(got, k + 1, ref, k)) {
      return "duplicated";
    }
    if (got.length < ref.length && k == got.length) {
      return "short";
    }
    return "changed";
  }

  /** Whether {@code a[from..]} and {@code b[bFrom..]} agree over their common part (at least 1). */
  private static boolean matches(int[] a, int from, int[] b, int bFrom) {
    int n = Math.min(a.length - from, b.length - bFrom);
    if (n < 1) {
      return false;
    }
    for (int i = 0; i < n; i++) {
      if (a[from + i] != b[bFrom + i]) {
        return false;
      }
    }
    return true;
  }
}
