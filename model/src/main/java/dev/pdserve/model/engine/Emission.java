package dev.pdserve.model.engine;

import dev.pdserve.model.sampling.FinishReason;

/**
 * What one generated token adds to a request's output.
 *
 * @param tokenId the token
 * @param text text to stream now (may be empty: held back, or a special token)
 * @param logprob the token's log-probability, NaN when not asked for
 * @param finish null while the request goes on, else why it finished
 * @param stopReason the stop string or stop token id that finished it, else null
 */
public record Emission(
    int tokenId, String text, double logprob, FinishReason finish, String stopReason) {
  public boolean finished() {
    return finish != null;
  }
}
