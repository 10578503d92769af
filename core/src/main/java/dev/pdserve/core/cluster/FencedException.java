package dev.pdserve.core.cluster;

/**
 * A registry or coordinator write refused because its writer is not (any more) a member of the
 * cluster, or no longer holds the coordinator term it acted under.
 */
public final class FencedException extends IllegalStateException {
  private static final long serialVersionUID = 1L;

  public FencedException(String message) {
    super(message);
  }
}
