package dev.pdserve.core.grpc;

import dev.pdserve.core.kv.KvPoolExhaustedException;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.sampling.InvalidRequestException;
import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;

/** Maps exceptions to gRPC statuses at the edge, and statuses back to exceptions. */
public final class GrpcErrors {
  private GrpcErrors() {}

  public static Status toStatus(Throwable t) {
    Throwable e = unwrap(t);
    if (e instanceof StatusRuntimeException sre) {
      return sre.getStatus();
    }
    if (e instanceof StatusException se) {
      return se.getStatus();
    }
    if (e instanceof ServingException se) {
      return Status.fromCodeValue(code(se.kind()).value()).withDescription(se.getMessage());
    }
    if (e instanceof InvalidRequestException ire) {
      return Status.INVALID_ARGUMENT.withDescription(ire.getMessage());
    }
    if (e instanceof KvPoolExhaustedException kpe) {
      return Status.RESOURCE_EXHAUSTED.withDescription(kpe.getMessage());
    }
    if (e instanceof CancellationException) {
      return Status.CANCELLED.withDescription(
          e.getMessage() == null ? "cancelled" : e.getMessage());
    }
    if (e instanceof IllegalArgumentException) {
      return Status.INVALID_ARGUMENT.withDescription(e.getMessage());
    }
    return Status.INTERNAL.withDescription(e.toString()).withCause(e);
  }

  public static StatusRuntimeException toException(Throwable t) {
    return toStatus(t).asRuntimeException();
  }

  /** The status of a failed call, as a {@link ServingException} of the same class. */
  public static ServingException fromStatus(Status s, String context) {
    ServingException.Kind kind;
    try {
      kind = ServingException.Kind.valueOf(s.getCode().name());
    } catch (IllegalArgumentException e) {
      kind = ServingException.Kind.INTERNAL;
    }
    String desc = s.getDescription() == null ? s.getCode().name() : s.getDescription();
    return new ServingException(kind, context + ": " + desc, s.getCause());
  }

  public static Throwable unwrap(Throwable t) {
    Throwable e = t;
    while ((e instanceof CompletionException || e instanceof ExecutionException)
        && e.getCause() != null) {
      e = e.getCause();
    }
    return e;
  }

  private static Status.Code code(ServingException.Kind kind) {
    return Status.Code.valueOf(kind.name());
  }
}
