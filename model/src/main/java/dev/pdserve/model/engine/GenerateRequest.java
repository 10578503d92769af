package dev.pdserve.model.engine;

import dev.pdserve.model.sampling.SamplingParams;

/**
 * One generation request as the engine sees it.
 *
 * @param requestId the id every log line and metric of the request carries
 * @param prompt what to continue
 * @param sampling sampling parameters (validated against the prompt and the model's context)
 * @param enableThinking the chat template's thinking mode (chat prompts only)
 */
public record GenerateRequest(
    String requestId, Prompt prompt, SamplingParams sampling, boolean enableThinking) {
  public GenerateRequest {
    if (requestId == null || requestId.isBlank()) {
      throw new IllegalArgumentException("request_id must not be empty");
    }
    if (prompt == null) {
      throw new IllegalArgumentException("a request needs a prompt");
    }
    if (sampling == null) {
      sampling = SamplingParams.defaults();
    }
  }
}
