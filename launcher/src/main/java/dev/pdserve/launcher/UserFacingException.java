package dev.pdserve.launcher;

/** A failure whose message is complete for the user (e.g. a gRPC status name and message). */
final class UserFacingException extends RuntimeException {
  private static final long serialVersionUID = 1L;
  private final int exitCode;

  UserFacingException(String message, int exitCode) {
    super(message);
    this.exitCode = exitCode;
  }

  int exitCode() {
    return exitCode;
  }
}
