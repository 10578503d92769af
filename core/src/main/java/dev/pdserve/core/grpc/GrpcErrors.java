package dev.pdserve.core.grpc;

import dev.pdserve.core.experts.ExpertDispatchException;
import dev.pdserve.core.kv.KvPoolExhaustedException;
import dev.pdserve.core.serving.ExpertsUnavailableException;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.sampling.InvalidRequestException;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Maps exceptions to gRPC statuses at the edge, and statuses back to exceptions. A status's
 * description is for people: it carries the exception's message, never its class name (an
 * unexpected exception is logged here with its stack and answered as INTERNAL with its message).
 */
public final class GrpcErrors {
  private static final Logger LOG = LogManager.getLogger(GrpcErrors.class);

  /**
   * Trailer naming what failed when the class alone does not say: {@value #FAULT_EXPERTS} for an
   * UNAVAILABLE caused by routed experts without a live shard (not the answering node's fault).
   */
  public static final Metadata.Key<String> FAULT =
      Metadata.Key.of("pdserve-fault", Metadata.ASCII_STRING_MARSHALLER);

  /** {@link #FAULT} of an expert-shard loss. */
  public static final String FAULT_EXPERTS = "experts-unavailable";

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
    LOG.warn("answering INTERNAL for an unexpected error", e);
    return Status.INTERNAL.withDescription(describe(e)).withCause(e);
  }

  /**
   * What a client may read of an unexpected exception: its message (else "internal error"), with no
   * class name.
   */
  public static String describe(Throwable e) {
    String m = e.getMessage();
    return m == null || m.isBlank()
        ? "internal error (see the node's log)"
        : "internal error: " + m;
  }

  /** {@link #toStatus} as an exception, with the {@link #FAULT} trailer when it applies. */
  public static StatusRuntimeException toException(Throwable t) {
    Status status = toStatus(t);
    if (status.getCode() == Status.Code.UNAVAILABLE && expertsUnavailable(t)) {
      Metadata trailers = new Metadata();
      trailers.put(FAULT, FAULT_EXPERTS);
      return status.asRuntimeException(trailers);
    }
    return status.asRuntimeException();
  }

  /** Whether {@code t} or one of its causes is routed experts without a live shard. */
  public static boolean expertsUnavailable(Throwable t) {
    for (Throwable e = t; e != null; e = e.getCause() == e ? null : e.getCause()) {
      if (e instanceof ExpertsUnavailableException
          || (e instanceof ExpertDispatchException d && d.expertsUnavailable())) {
        return true;
      }
    }
    return false;
  }

  /**
   * A failed call as a {@link ServingException} of its status class; an {@link
   * ExpertsUnavailableException} when the node marked it so ({@link #FAULT}).
   */
  public static ServingException fromCall(Throwable t, String context) {
    Status s = Status.fromThrowable(t);
    Metadata trailers = Status.trailersFromThrowable(t);
    if (s.getCode() == Status.Code.UNAVAILABLE
        && trailers != null
        && FAULT_EXPERTS.equals(trailers.get(FAULT))) {
      String desc = s.getDescription() == null ? s.getCode().name() : s.getDescription();
      return new ExpertsUnavailableException(context + ": " + desc, s.getCause());
    }
    return fromStatus(s, context);
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
