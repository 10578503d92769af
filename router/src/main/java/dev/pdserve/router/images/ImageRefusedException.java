package dev.pdserve.router.images;

/**
 * An image part of a request the router will not take: broken, of a type it does not read, over a
 * limit, or at a URL it may not or could not fetch. The message starts with the part, as the client
 * named it ({@code messages[0].content[1]: ...}, {@code images[2]: ...}); only that request fails.
 */
public final class ImageRefusedException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final String part;
  private final boolean tooLarge;

  /**
   * @param part where the image is in the request
   * @param reason what is wrong, without the part
   * @param tooLarge the image's bytes are over the limit (HTTP 413; otherwise 400)
   */
  public ImageRefusedException(String part, String reason, boolean tooLarge) {
    super(part + ": " + reason);
    this.part = part;
    this.tooLarge = tooLarge;
  }

  public String part() {
    return part;
  }

  /** Whether the image was refused for its size in bytes (HTTP 413). */
  public boolean tooLarge() {
    return tooLarge;
  }
}
