package dev.pdserve.core.serving;

/**
 * A request-level failure with the gRPC status class it maps to at the edge and a message a person
 * can act on. Domain code throws it; adapters translate it with {@link
 * dev.pdserve.core.grpc.GrpcErrors}.
 */
public class ServingException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** The status classes pdserve uses (a subset of gRPC's codes). */
  public enum Kind {
    INVALID_ARGUMENT,
    NOT_FOUND,
    ALREADY_EXISTS,
    FAILED_PRECONDITION,
    RESOURCE_EXHAUSTED,
    UNAVAILABLE,
    DEADLINE_EXCEEDED,
    CANCELLED,
    INTERNAL
  }

  private final Kind kind;

  public ServingException(Kind kind, String message) {
    super(message);
    this.kind = kind;
  }

  public ServingException(Kind kind, String message, Throwable cause) {
    super(message, cause);
    this.kind = kind;
  }

  public Kind kind() {
    return kind;
  }

  public static ServingException invalid(String message) {
    return new ServingException(Kind.INVALID_ARGUMENT, message);
  }

  public static ServingException notFound(String message) {
    return new ServingException(Kind.NOT_FOUND, message);
  }

  public static ServingException exhausted(String message) {
    return new ServingException(Kind.RESOURCE_EXHAUSTED, message);
  }

  public static ServingException unavailable(String message) {
    return new ServingException(Kind.UNAVAILABLE, message);
  }

  public static ServingException unavailable(String message, Throwable cause) {
    return new ServingException(Kind.UNAVAILABLE, message, cause);
  }

  public static ServingException cancelled(String message) {
    return new ServingException(Kind.CANCELLED, message);
  }

  public static ServingException deadline(String message) {
    return new ServingException(Kind.DEADLINE_EXCEEDED, message);
  }

  @Override
  public String toString() {
    return kind + ": " + getMessage();
  }
}
