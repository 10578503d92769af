package dev.pdserve.model.sampling;

/** Why a sequence stopped generating. */
public enum FinishReason {
  /** EOS, a stop token id or a stop string. */
  STOP("stop"),
  /** {@code max_tokens} generated, or the context is full. */
  LENGTH("length"),
  /** Cancelled by the client or the server. */
  ABORT("abort");

  private final String wireName;

  FinishReason(String wireName) {
    this.wireName = wireName;
  }

  /** The OpenAI / vLLM spelling: {@code stop}, {@code length}, {@code abort}. */
  public String wireName() {
    return wireName;
  }
}
