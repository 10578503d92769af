package dev.pdserve.expert;

/**
 * A dispatch that can never be computed as sent (wrong sizes, a layer or expert that does not
 * exist).
 */
public final class InvalidDispatchException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;

  public InvalidDispatchException(String message) {
    super(message);
  }
}
