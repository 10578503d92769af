package dev.pdserve.router;

import dev.pdserve.model.engine.GenerateRequest;

/**
 * A request as the router admitted it: validated, tokenized, its routing decided.
 *
 * @param request the caller's request
 * @param prompt its token ids
 * @param prefixHashes the prompt's full-block hashes when prefix-aware routing is on, else null
 * @param seed the sampling seed (the caller's, or one the router drew)
 * @param localPrefill whether the decode node prefills the prompt itself
 * @param deadlineNanos absolute deadline on the router's clock, or 0 for none
 * @param arrivalNanos when the router took it, on the router's clock
 */
record PreparedRequest(
    GenerateRequest request,
    int[] prompt,
    long[] prefixHashes,
    long seed,
    boolean localPrefill,
    long deadlineNanos,
    long arrivalNanos) {}
