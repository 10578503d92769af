package dev.pdserve.prefill;

import dev.pdserve.model.sampling.SamplingParams;

/** One prompt to prefill and the decode node's Flight endpoint its KV goes to. */
public record PrefillJob(
    String requestId,
    int[] promptIds,
    SamplingParams params,
    long seed,
    String transferId,
    String flightHost,
    int flightPort) {}
