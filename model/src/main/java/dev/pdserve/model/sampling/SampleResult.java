package dev.pdserve.model.sampling;

import java.util.List;

/**
 * One sampled token.
 *
 * @param tokenId the chosen token
 * @param logprob its log-probability under the distribution it was drawn from (after penalties,
 *     temperature and top-k/top-p/min-p); for greedy decoding the log-softmax of the penalised
 *     logits. {@code NaN} for greedy decoding when no logprobs were requested (not computed, to
 *     keep the greedy path a single pass)
 * @param topLogprobs the {@code logprobs} most likely tokens of that same distribution, most likely
 *     first (ties: lower id first); empty when none were requested
 */
public record SampleResult(int tokenId, double logprob, List<TopLogprob> topLogprobs) {
  public SampleResult {
    topLogprobs = List.copyOf(topLogprobs);
  }

  /** A candidate token and its log-probability. */
  public record TopLogprob(int tokenId, double logprob) {}
}
