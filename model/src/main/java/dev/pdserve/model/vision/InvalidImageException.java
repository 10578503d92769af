package dev.pdserve.model.vision;

/**
 * An image that cannot be used: not a PNG or JPEG, broken, truncated, empty, too large, or of an
 * unusable shape. The message says what is wrong with the image; the caller adds which part of the
 * request it was (for example {@code messages[0].content[1]}).
 */
public final class InvalidImageException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;

  public InvalidImageException(String message) {
    super(message);
  }

  public InvalidImageException(String message, Throwable cause) {
    super(message, cause);
  }
}
