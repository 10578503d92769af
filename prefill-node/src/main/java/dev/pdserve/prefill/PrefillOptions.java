package dev.pdserve.prefill;

/**
 * Prefill node settings.
 *
 * @param chunkTokens a long prompt is computed in chunks of at most this many tokens, so other
 *     prompts are not held behind it
 * @param maxBatchTokens prompt tokens computed in one step at most (several short prompts batch)
 */
public record PrefillOptions(int chunkTokens, int maxBatchTokens) {
  public PrefillOptions {
    if (chunkTokens < 1 || maxBatchTokens < chunkTokens) {
      throw new IllegalArgumentException(
          "prefill chunk tokens must be >= 1 and max batch tokens >= chunk tokens, got "
              + chunkTokens
              + " and "
              + maxBatchTokens);
    }
  }

  public static PrefillOptions defaults() {
    return new PrefillOptions(512, 2048);
  }
}
