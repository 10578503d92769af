package dev.pdserve.core.experts;

import dev.pdserve.core.serving.ServingException;
import io.grpc.Status;

/**
 * Routed experts of one MoE layer could not be computed remotely: a shard failed (its id, the layer
 * and the gRPC status are named), or no live shard hosts an expert. A {@link ServingException} of
 * class UNAVAILABLE (CANCELLED when the caller was interrupted), so the edge reports it as such
 * with its message; {@link dev.pdserve.core.grpc.GrpcErrors} marks it as an expert fault on the
 * wire.
 */
public final class ExpertDispatchException extends ServingException {
  private static final long serialVersionUID = 1L;

  private final String shardId;
  private final int layer;
  private final transient Status status;

  private ExpertDispatchException(
      String message, String shardId, int layer, Status status, Throwable cause) {
    super(
        status.getCode() == Status.Code.CANCELLED ? Kind.CANCELLED : Kind.UNAVAILABLE,
        message,
        cause);
    this.shardId = shardId;
    this.layer = layer;
    this.status = status;
  }

  /** Shard {@code shardId} at {@code address} answered layer {@code layer} with {@code status}. */
  static ExpertDispatchException shardFailed(
      String shardId,
      String address,
      int layer,
      long placementVersion,
      Status status,
      Throwable cause) {
    String desc = status.getDescription() == null ? "" : ": " + status.getDescription();
    return new ExpertDispatchException(
        "expert shard "
            + shardId
            + " ("
            + address
            + ") failed layer "
            + layer
            + " (placement v"
            + placementVersion
            + "): "
            + status.getCode()
            + desc,
        shardId,
        layer,
        status,
        cause);
  }

  /** Something about one shard other than its answer (unknown address, a malformed response). */
  static ExpertDispatchException shardProblem(String shardId, int layer, String problem) {
    return new ExpertDispatchException(
        "expert shard " + shardId + ", layer " + layer + ": " + problem,
        shardId,
        layer,
        Status.UNAVAILABLE.withDescription(problem),
        null);
  }

  /** The calling thread was interrupted while shards were computing (their calls are cancelled). */
  static ExpertDispatchException interrupted(int layer, InterruptedException cause) {
    return new ExpertDispatchException(
        "layer " + layer + ": interrupted while waiting for expert shards",
        null,
        layer,
        Status.CANCELLED.withDescription("interrupted"),
        cause);
  }

  /** No shard to send to: the placement lacks an expert, or there is no placement yet. */
  static ExpertDispatchException unplaced(int layer, String problem) {
    return new ExpertDispatchException(
        "layer " + layer + ": " + problem,
        null,
        layer,
        Status.UNAVAILABLE.withDescription(problem),
        null);
  }

  /**
   * No live shard for some experts of a layer: {@code what} names them and why (e.g. {@code experts
   * 3, 7 of layer 2 have no live shard (shard e1 left the cluster)}); {@code shardId} is the one
   * shard that was their only host, or null.
   */
  static ExpertDispatchException noLiveShard(String shardId, int layer, String what) {
    return new ExpertDispatchException(
        what, shardId, layer, Status.UNAVAILABLE.withDescription(what), null);
  }

  /** Whether this is a missing expert (no live shard), not a caller's interrupt. */
  public boolean expertsUnavailable() {
    return kind() == Kind.UNAVAILABLE;
  }

  /**
   * The shard that failed; null when the failure is not one shard's (no placement for an expert, an
   * interrupt).
   */
  public String shardId() {
    return shardId;
  }

  public int layer() {
    return layer;
  }

  /** The shard's gRPC status (its code and description), or UNAVAILABLE for problems found here. */
  public Status status() {
    return status;
  }
}
