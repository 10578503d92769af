package dev.pdserve.model.sampling;

/**
 * A request parameter a client must change. {@link #field()} names the parameter as the public API
 * spells it ({@code max_tokens}, {@code top_p}, {@code prompt}...); the message says what is wrong
 * and what was given. Edges map it to {@code INVALID_ARGUMENT} / HTTP 400.
 */
public final class InvalidRequestException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;

  private final String field;

  public InvalidRequestException(String field, String message) {
    super(message);
    this.field = field;
  }

  /** The offending request field, e.g. {@code "temperature"} or {@code "stop_token_ids"}. */
  public String field() {
    return field;
  }
}
