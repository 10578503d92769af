package dev.pdserve.decode;

import dev.pdserve.model.sampling.SamplingParams;

/**
 * A prefilled request joining the decode batch: its prompt (for penalties and stop context), the
 * first token the prefill node sampled, and the sampling state (the seed makes sampling a pure
 * function of the step, so decode continues exactly where prefill left off). With {@code
 * localPrefill} the decode node computes the prompt's KV and first token itself (conditional
 * disaggregation) and {@code firstToken}/{@code firstLogprob} are ignored.
 */
public record JoinRequest(
    String requestId,
    String transferId,
    int[] promptIds,
    int firstToken,
    double firstLogprob,
    SamplingParams params,
    long seed,
    int cachedTokens,
    boolean localPrefill) {

  /** A request prefilled on a prefill node. */
  public static JoinRequest prefilled(
      String requestId,
      String transferId,
      int[] promptIds,
      int firstToken,
      double firstLogprob,
      SamplingParams params,
      long seed,
      int cachedTokens) {
    return new JoinRequest(
        requestId,
        transferId,
        promptIds,
        firstToken,
        firstLogprob,
        params,
        seed,
        cachedTokens,
        false);
  }

  /** A request whose prompt the decode node prefills itself. */
  public static JoinRequest localPrefill(
      String requestId, String transferId, int[] promptIds, SamplingParams params, long seed) {
    return new JoinRequest(requestId, transferId, promptIds, -1, 0, params, seed, 0, true);
  }
}
