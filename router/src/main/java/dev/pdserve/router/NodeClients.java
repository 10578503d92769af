package dev.pdserve.router;

import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.model.sampling.SamplingParams;
import java.util.concurrent.CompletableFuture;

/**
 * The router's calls to prefill and decode nodes (implemented over gRPC in {@code router.grpc}).
 * Futures fail with {@link dev.pdserve.core.serving.ServingException}s that keep the node's status
 * class. {@code deadlineNanos} is an absolute {@link System#nanoTime()} deadline, or 0.
 */
public interface NodeClients {
  /**
   * A decode node's KV reservation.
   *
   * @param leaseMillis how long it lives without {@link #renewLeases}; 0 when the node has no
   *     leases
   */
  record Reserved(String transferId, String flightHost, int flightPort, long leaseMillis) {
    public Reserved(String transferId, String flightHost, int flightPort) {
      this(transferId, flightHost, flightPort, 0);
    }
  }

  /**
   * A prefill node's answer.
   *
   * @param cachedPromptBlocks leading full blocks of the prompt the node's prefix cache now holds
   */
  record FirstToken(
      int token, double logprob, int cachedTokens, long kvBytes, int cachedPromptBlocks) {
    public FirstToken(int token, double logprob, int cachedTokens, long kvBytes) {
      this(token, logprob, cachedTokens, kvBytes, 0);
    }
  }

  /** Receives a decode stream. */
  interface DecodeListener {
    void onDelta(int[] tokenIds, String text, float[] logprobs);

    void onComplete(
        String finishReason,
        String stopReason,
        int promptTokens,
        int completionTokens,
        int cachedTokens);

    void onError(dev.pdserve.core.serving.ServingException error);

    /**
     * The sequence moved to another decode node; this stream has ended (no completion follows on
     * it).
     */
    default void onMigrated(Migrated migrated) {
      onError(
          dev.pdserve.core.serving.ServingException.unavailable(
              "decode node moved the sequence to " + migrated.targetNodeId()));
    }
  }

  /**
   * A decode stream's sequence moved (its node is draining for a role switch).
   *
   * @param targetNodeId the node it continues on
   * @param targetGrpcAddress that node's gRPC address
   * @param transferId the reservation there holding its KV
   * @param generatedIds every token generated so far (each was sent on the streams before)
   */
  record Migrated(
      String targetNodeId, String targetGrpcAddress, String transferId, int[] generatedIds) {}

  /** A call that can be cancelled. */
  interface Call {
    void cancel(String why);
  }

  CompletableFuture<Reserved> reserve(
      NodeInfo decode, String requestId, int promptTokens, int maxTokens, long deadlineNanos);

  void release(NodeInfo decode, String transferId);

  /** Starts a prefill; {@code onCall} receives the cancellable call before the future completes. */
  CompletableFuture<FirstToken> prefill(
      NodeInfo prefill,
      String requestId,
      int[] prompt,
      SamplingParams params,
      long seed,
      Reserved target,
      long deadlineNanos,
      java.util.function.Consumer<Call> onCall);

  Call decode(
      NodeInfo decode,
      String requestId,
      Reserved reservation,
      int[] prompt,
      FirstToken first,
      SamplingParams params,
      long seed,
      long deadlineNanos,
      DecodeListener listener);

  /**
   * Renews the leases of reservations on {@code decode}; the future holds the ids the node does not
   * know any more. By default there are no leases to renew.
   */
  default CompletableFuture<java.util.List<String>> renewLeases(
      NodeInfo decode, java.util.List<String> transferIds) {
    return CompletableFuture.completedFuture(java.util.List.of());
  }

  /** Whether {@link #decodeWithLocalPrefill} is available. */
  default boolean supportsLocalPrefill() {
    return false;
  }

  /**
   * Like {@link #decode}, but the decode node computes the prompt's KV and first token itself
   * (conditional disaggregation): no prefill node, no KV transfer.
   */
  Call decodeWithLocalPrefill(
      NodeInfo decode,
      String requestId,
      Reserved reservation,
      int[] prompt,
      SamplingParams params,
      long seed,
      long deadlineNanos,
      DecodeListener listener);

  /**
   * Continues a migrated sequence on {@code decode}: its KV is in {@code reservation}, the tokens
   * generated so far are {@code generated}; the stream carries the tokens after them.
   */
  Call resume(
      NodeInfo decode,
      String requestId,
      Reserved reservation,
      int[] prompt,
      int[] generated,
      SamplingParams params,
      long seed,
      long deadlineNanos,
      DecodeListener listener);
}
