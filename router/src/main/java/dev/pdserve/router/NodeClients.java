package dev.pdserve.router;

import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.vision.PromptImage;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;

/**
 * The router's calls to prefill and decode nodes (implemented over gRPC in {@code router.grpc}).
 * Futures fail with {@link ServingException}s that keep the node's status class. Every call's
 * {@code deadlineNanos} is an absolute time on the router's clock ({@link Router#ticker()}), or 0
 * for none. Arrays in the call records are the router's own; implementations read them and do not
 * change them.
 */
public interface NodeClients {
  /**
   * A decode node's KV reservation.
   *
   * @param leaseMillis how long it lives without {@link #renewLeases}; 0 when the node has no
   *     leases
   */
  record Reserved(String transferId, String flightHost, int flightPort, long leaseMillis) {}

  /**
   * A prefill node's answer.
   *
   * @param cachedPromptBlocks leading full blocks of the prompt the node's prefix cache now holds
   */
  record FirstToken(
      int token, double logprob, int cachedTokens, long kvBytes, int cachedPromptBlocks) {}

  /** Reserve KV on a decode node for a prompt and up to {@code maxTokens} generated tokens. */
  record ReserveCall(String requestId, int promptTokens, int maxTokens, long deadlineNanos) {}

  /**
   * Prefill {@code prompt} on a prefill node, which pushes its KV into reservation {@code target}
   * (on the decode node) and answers the first token; {@code images} are the prompt's (their
   * placeholders are in {@code prompt}), empty for text.
   */
  record PrefillCall(
      String requestId,
      int[] prompt,
      SamplingParams params,
      long seed,
      Reserved target,
      long deadlineNanos,
      List<PromptImage> images) {
    public PrefillCall {
      images = images == null ? List.of() : List.copyOf(images);
    }

    /** A text prompt's prefill. */
    public PrefillCall(
        String requestId,
        int[] prompt,
        SamplingParams params,
        long seed,
        Reserved target,
        long deadlineNanos) {
      this(requestId, prompt, params, seed, target, deadlineNanos, List.of());
    }
  }

  /**
   * Decode a sequence whose KV is in {@code reservation}, after its {@code first} token; {@code
   * first} null: the decode node computes the prompt's KV and first token itself (conditional
   * disaggregation: no prefill node, no KV transfer; only where {@link #supportsLocalPrefill}).
   * {@code images} (sent only for a local prefill) and {@code positionDelta} are the prompt's.
   */
  record DecodeCall(
      String requestId,
      Reserved reservation,
      int[] prompt,
      FirstToken first,
      SamplingParams params,
      long seed,
      long deadlineNanos,
      List<PromptImage> images,
      int positionDelta) {
    public DecodeCall {
      images = images == null ? List.of() : List.copyOf(images);
    }

    /** A text prompt's decode. */
    public DecodeCall(
        String requestId,
        Reserved reservation,
        int[] prompt,
        FirstToken first,
        SamplingParams params,
        long seed,
        long deadlineNanos) {
      this(requestId, reservation, prompt, first, params, seed, deadlineNanos, List.of(), 0);
    }

    /** Whether the decode node prefills the prompt itself. */
    public boolean localPrefill() {
      return first == null;
    }
  }

  /**
   * Continue a sequence on another decode node: the tokens generated so far are {@code generated}
   * (the client has them); {@code reservation} holds the KV of the prompt and of every generated
   * token but the last — pushed there (by the draining node it moved from, or by a prefill node
   * after its first decode node was lost), or, with {@code localPrefill}, computed by the decode
   * node itself (only where {@link #supportsLocalPrefill}). The stream carries the tokens after
   * {@code generated}. {@code images} (sent only with {@code localPrefill}) and {@code
   * positionDelta} are the prompt's.
   */
  record ResumeCall(
      String requestId,
      Reserved reservation,
      int[] prompt,
      int[] generated,
      SamplingParams params,
      long seed,
      long deadlineNanos,
      boolean localPrefill,
      List<PromptImage> images,
      int positionDelta) {
    public ResumeCall {
      images = images == null ? List.of() : List.copyOf(images);
    }

    /** A text prompt's resume. */
    public ResumeCall(
        String requestId,
        Reserved reservation,
        int[] prompt,
        int[] generated,
        SamplingParams params,
        long seed,
        long deadlineNanos,
        boolean localPrefill) {
      this(
          requestId,
          reservation,
          prompt,
          generated,
          params,
          seed,
          deadlineNanos,
          localPrefill,
          List.of(),
          0);
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

    void onError(ServingException error);

    /**
     * The sequence moved to another decode node; this stream has ended (no completion follows on
     * it).
     */
    default void onMigrated(Migrated migrated) {
      onError(
          ServingException.unavailable(
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

  CompletableFuture<Reserved> reserve(NodeInfo decode, ReserveCall call);

  void release(NodeInfo decode, String transferId);

  /** Starts a prefill; {@code onCall} receives the cancellable call before the future completes. */
  CompletableFuture<FirstToken> prefill(NodeInfo prefill, PrefillCall call, Consumer<Call> onCall);

  /** Opens a decode stream on {@code decode}; {@code listener} hears it to its end. */
  Call decode(NodeInfo decode, DecodeCall call, DecodeListener listener);

  /** Opens the stream of a migrated sequence on {@code decode}, the node it moved to. */
  Call resume(NodeInfo decode, ResumeCall call, DecodeListener listener);

  /**
   * Renews the leases of reservations on {@code decode}; the future holds the ids the node does not
   * know any more. By default there are no leases to renew.
   */
  default CompletableFuture<List<String>> renewLeases(NodeInfo decode, List<String> transferIds) {
    return CompletableFuture.completedFuture(List.of());
  }

  /**
   * Whether {@link #decode} takes calls without a first token, and {@link #resume} calls with
   * {@code localPrefill} (local prefill).
   */
  default boolean supportsLocalPrefill() {
    return false;
  }
}
