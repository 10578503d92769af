package dev.pdserve.model.engine;

import dev.pdserve.model.sampling.FinishReason;

/**
 * A finished generation.
 *
 * @param tokenIds generated token ids (a stop token that finished the request included)
 * @param text the generated text (stop string excluded)
 * @param logprobs per generated token, NaN when not asked for
 * @param prefillMillis time to compute the prompt (and sample the first token)
 * @param totalMillis time from the start of the request to its end
 */
public record GenerateResult(
    String requestId,
    int[] tokenIds,
    String text,
    FinishReason finishReason,
    String stopReason,
    int promptTokens,
    int cachedTokens,
    double[] logprobs,
    double prefillMillis,
    double totalMillis) {
  public int completionTokens() {
    return tokenIds.length;
  }
}
