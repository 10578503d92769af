package dev.pdserve.core.serving;

/**
 * UNAVAILABLE because routed experts a request needs have no live expert shard (a shard without a
 * replica died or left): not the fault of the worker that reports it, so the router fails the
 * request instead of moving it to another worker, which would need the same experts. A worker marks
 * it on the wire ({@link dev.pdserve.core.grpc.GrpcErrors#FAULT}); the router's clients rebuild it.
 */
public final class ExpertsUnavailableException extends ServingException {
  private static final long serialVersionUID = 1L;

  public ExpertsUnavailableException(String message, Throwable cause) {
    super(Kind.UNAVAILABLE, message, cause);
  }
}
