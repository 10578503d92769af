package dev.pdserve.router;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.serving.ServingException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * The router's {@link NodeClients} port in memory: records every call, and lets the test answer it
 * (grant or refuse a reservation, answer a prefill, push a decode stream's deltas, completion,
 * error or migration) on the test's thread. Calls the router makes on its admission thread are
 * awaited with {@link #nextReserve()} and friends.
 */
final class InMemoryNodeClients implements NodeClients {
  private static final long WAIT_SECONDS = 10;

  private final BlockingQueue<ReserveAttempt> reserves = new LinkedBlockingQueue<>();
  private final BlockingQueue<PrefillAttempt> prefills = new LinkedBlockingQueue<>();
  private final BlockingQueue<OpenStream> streams = new LinkedBlockingQueue<>();
  private final List<Release> releases = new CopyOnWriteArrayList<>();
  private final List<Renewal> renewals = new CopyOnWriteArrayList<>();
  private volatile boolean localPrefill;

  /** A KV reservation asked of {@code node}. */
  record ReserveAttempt(NodeInfo node, ReserveCall call, CompletableFuture<Reserved> answer) {
    Reserved grant(String transferId, long leaseMillis) {
      Reserved r = new Reserved(transferId, node.id() + "-flight", 4711, leaseMillis);
      answer.complete(r);
      return r;
    }

    void refuse(ServingException e) {
      answer.completeExceptionally(e);
    }
  }

  /** A prefill asked of {@code node}; {@code handle} records its cancellation. */
  record PrefillAttempt(
      NodeInfo node, PrefillCall call, CompletableFuture<FirstToken> answer, RecordedCall handle) {
    void firstToken(int token) {
      answer.complete(new FirstToken(token, -0.25, 0, 1024, 0));
    }

    void fail(ServingException e) {
      answer.completeExceptionally(e);
    }
  }

  /**
   * A decode stream opened on {@code node}: {@code decode} for a new one, {@code resume} after a
   * migration (the other null).
   */
  record OpenStream(
      NodeInfo node,
      DecodeCall decode,
      ResumeCall resume,
      DecodeListener listener,
      RecordedCall handle) {
    String requestId() {
      return decode != null ? decode.requestId() : resume.requestId();
    }

    /** A delta of {@code ids}; token {@code t}'s logprob is {@code -t}. */
    void delta(int... ids) {
      float[] logprobs = new float[ids.length];
      for (int i = 0; i < ids.length; i++) {
        logprobs[i] = -ids[i];
      }
      listener.onDelta(ids, "", logprobs);
    }

    void complete(String finishReason, int completionTokens) {
      listener.onComplete(finishReason, null, 0, completionTokens, 0);
    }

    void fail(ServingException e) {
      listener.onError(e);
    }

    void migrated(NodeInfo target, String transferId, int... generated) {
      listener.onMigrated(
          new Migrated(target.id(), target.grpcAddress(), transferId, generated.clone()));
    }
  }

  record Release(String nodeId, String transferId) {}

  record Renewal(String nodeId, List<String> transferIds) {}

  /** A call handle that remembers why it was cancelled. */
  static final class RecordedCall implements Call {
    private final List<String> cancels = new CopyOnWriteArrayList<>();

    @Override
    public void cancel(String why) {
      cancels.add(why);
    }

    boolean cancelled() {
      return !cancels.isEmpty();
    }

    List<String> cancels() {
      return List.copyOf(cancels);
    }
  }

  void supportLocalPrefill(boolean supported) {
    this.localPrefill = supported;
  }

  @Override
  public boolean supportsLocalPrefill() {
    return localPrefill;
  }

  @Override
  public CompletableFuture<Reserved> reserve(NodeInfo decode, ReserveCall call) {
    CompletableFuture<Reserved> answer = new CompletableFuture<>();
    reserves.add(new ReserveAttempt(decode, call, answer));
    return answer;
  }

  @Override
  public void release(NodeInfo decode, String transferId) {
    releases.add(new Release(decode.id(), transferId));
  }

  @Override
  public CompletableFuture<FirstToken> prefill(
      NodeInfo prefill, PrefillCall call, Consumer<Call> onCall) {
    CompletableFuture<FirstToken> answer = new CompletableFuture<>();
    RecordedCall handle = new RecordedCall();
    onCall.accept(handle);
    prefills.add(new PrefillAttempt(prefill, call, answer, handle));
    return answer;
  }

  @Override
  public Call decode(NodeInfo decode, DecodeCall call, DecodeListener listener) {
    RecordedCall handle = new RecordedCall();
    streams.add(new OpenStream(decode, call, null, listener, handle));
    return handle;
  }

  @Override
  public Call resume(NodeInfo decode, ResumeCall call, DecodeListener listener) {
    RecordedCall handle = new RecordedCall();
    streams.add(new OpenStream(decode, null, call, listener, handle));
    return handle;
  }

  @Override
  public CompletableFuture<List<String>> renewLeases(NodeInfo decode, List<String> transferIds) {
    renewals.add(new Renewal(decode.id(), List.copyOf(transferIds)));
    return CompletableFuture.completedFuture(List.of());
  }

  /** The next reservation the router asked for (waits for one made on another thread). */
  ReserveAttempt nextReserve() {
    return next(reserves, "KV reservation");
  }

  PrefillAttempt nextPrefill() {
    return next(prefills, "prefill");
  }

  OpenStream nextStream() {
    return next(streams, "decode stream");
  }

  void assertNoMoreCalls() {
    List<Object> left = new ArrayList<>();
    left.addAll(reserves);
    left.addAll(prefills);
    left.addAll(streams);
    assertTrue(left.isEmpty(), "expected no further calls to nodes, got " + left);
  }

  List<Release> releases() {
    return List.copyOf(releases);
  }

  /** The RenewLeases calls made so far; forgets them. */
  List<Renewal> takeRenewals() {
    List<Renewal> r = List.copyOf(renewals);
    renewals.removeAll(r);
    return r;
  }

  private static <T> T next(BlockingQueue<T> queue, String what) {
    try {
      T t = queue.poll(WAIT_SECONDS, TimeUnit.SECONDS);
      if (t == null) {
        fail("the router made no " + what + " call within " + WAIT_SECONDS + " s");
      }
      assertNotNull(t);
      return t;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError("interrupted waiting for a " + what + " call", e);
    }
  }
}
