package dev.pdserve.router.http;

import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.router.Router;

/**
 * A parsed OpenAI request: what the router is asked to generate, and how the answer is shaped.
 *
 * @param id the response id ({@code chatcmpl-...} / {@code cmpl-...}), also the router's request id
 * @param model the model name the response reports
 * @param created the response's {@code created} (Unix seconds)
 * @param generate the router's request
 * @param stream answer as server-sent events
 * @param includeUsage {@code stream_options.include_usage}: a last chunk with the usage
 * @param logprobs return each token's log-probability
 * @param returnTokenIds vLLM's {@code return_token_ids}: each choice carries its token ids
 * @param splitReasoning chat with thinking on: text before {@code </think>} goes to {@code
 *     reasoning_content}
 * @param deadlineNanos absolute deadline on the router's clock ({@link Router#ticker()}), or 0
 * @param promptParam the field holding the prompt ({@code messages} or {@code prompt}), for errors
 */
record ApiRequest(
    String id,
    String model,
    long created,
    GenerateRequest generate,
    boolean stream,
    boolean includeUsage,
    boolean logprobs,
    boolean returnTokenIds,
    boolean splitReasoning,
    long deadlineNanos,
    String promptParam) {}
