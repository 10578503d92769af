package dev.pdserve.launcher.cluster;

import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.SamplingParams;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;

/**
 * Greedy raw-prompt requests that ignore EOS (a fixed number of tokens) and what the single-process
 * reference engine answers to them: the cluster tests' expected output.
 */
final class Greedy {
  private Greedy() {}

  /** A greedy request for exactly {@code maxTokens} tokens of {@code prompt} as raw text. */
  static GenerateRequest request(String id, String prompt, int maxTokens) {
    return GenerateRequest.newBuilder()
        .setRequestId(id)
        .setPrompt(prompt)
        .setParams(
            SamplingParams.newBuilder()
                .setTemperature(0)
                .setMaxTokens(maxTokens)
                .setIgnoreEos(true))
        .build();
  }

  /** The reference engine's tokens for {@link #request}. */
  static int[] referenceTokens(ReferenceEngine reference, String prompt, int maxTokens) {
    return reference
        .generate(
            new dev.pdserve.model.engine.GenerateRequest(
                "ref",
                Prompt.text(prompt),
                dev.pdserve.model.sampling.SamplingParams.builder()
                    .temperature(0)
                    .maxTokens(maxTokens)
                    .ignoreEos(true)
                    .build(),
                true))
        .tokenIds();
  }
}
