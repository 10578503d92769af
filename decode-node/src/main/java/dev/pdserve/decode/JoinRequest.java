package dev.pdserve.decode;

import dev.pdserve.model.sampling.SamplingParams;

/**
 * A prefilled request joining the decode batch: its prompt (for penalties and stop context), the
 * first token the prefill node sampled, and the sampling state (the seed makes sampling a pure
 * function of the step, so decode continues exactly where prefill left off).
 */
public record JoinRequest(
    String requestId,
    String transferId,
    int[] promptIds,
    int firstToken,
    double firstLogprob,
    SamplingParams params,
    long seed,
    int cachedTokens) {}
