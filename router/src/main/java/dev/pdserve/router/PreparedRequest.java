package dev.pdserve.router;

import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.vision.PromptImage;
import java.util.List;

/**
 * A request as the router admitted it: validated, tokenized, its routing decided.
 *
 * @param request the caller's request
 * @param prompt its token ids (each image's placeholders expanded)
 * @param images the prompt's images with their digests and placeholders, in prompt order; empty for
 *     a text prompt
 * @param positionDelta the prompt's 3-D rotary delta (decode token i sits at i + delta on every
 *     axis); 0 for a text prompt
 * @param prefixHashes the prompt's full-block hashes when prefix-aware routing is on, else null
 * @param seed the sampling seed (the caller's, or one the router drew)
 * @param localPrefill whether the decode node prefills the prompt itself
 * @param deadlineNanos absolute deadline on the router's clock, or 0 for none
 * @param arrivalNanos when the router took it, on the router's clock
 */
record PreparedRequest(
    GenerateRequest request,
    int[] prompt,
    List<PromptImage> images,
    int positionDelta,
    long[] prefixHashes,
    long seed,
    boolean localPrefill,
    long deadlineNanos,
    long arrivalNanos) {}
