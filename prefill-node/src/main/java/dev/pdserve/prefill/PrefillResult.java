package dev.pdserve.prefill;

/** The first token of a prefilled request, once its whole KV is held by the decode node. */
public record PrefillResult(
    int firstToken,
    double firstLogprob,
    int cachedTokens,
    long kvBytes,
    long computeMicros,
    long transferMicros,
    int cachedPromptBlocks) {
  public PrefillResult(
      int firstToken,
      double firstLogprob,
      int cachedTokens,
      long kvBytes,
      long computeMicros,
      long transferMicros) {
    this(firstToken, firstLogprob, cachedTokens, kvBytes, computeMicros, transferMicros, 0);
  }
}
