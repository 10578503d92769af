package dev.pdserve.launcher;

import dev.pdserve.model.sampling.SamplingParams;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Option;

/** Sampling options shared by every command that generates. Names follow vLLM's parameters. */
final class SamplingOptions {
  @Option(
      names = "--max-tokens",
      paramLabel = "N",
      defaultValue = "64",
      description = "Tokens to generate at most. Default: ${DEFAULT-VALUE}.")
  int maxTokens;

  @Option(
      names = "--min-tokens",
      paramLabel = "N",
      defaultValue = "0",
      description = "Tokens to generate before EOS or stops may end the reply.")
  int minTokens;

  @Option(
      names = "--temperature",
      paramLabel = "T",
      defaultValue = "0",
      description = "0 = greedy (default).")
  double temperature;

  @Option(names = "--top-p", paramLabel = "P", defaultValue = "1.0")
  double topP;

  @Option(names = "--top-k", paramLabel = "K", defaultValue = "0", description = "0 = off.")
  int topK;

  @Option(names = "--min-p", paramLabel = "P", defaultValue = "0")
  double minP;

  @Option(names = "--repetition-penalty", paramLabel = "X", defaultValue = "1.0")
  double repetitionPenalty;

  @Option(names = "--presence-penalty", paramLabel = "X", defaultValue = "0")
  double presencePenalty;

  @Option(names = "--frequency-penalty", paramLabel = "X", defaultValue = "0")
  double frequencyPenalty;

  @Option(
      names = "--seed",
      paramLabel = "S",
      description = "Sampling seed: the same seed gives the same tokens.")
  Long seed;

  @Option(names = "--stop", paramLabel = "TEXT", description = "Stop string (repeatable).")
  List<String> stop = new ArrayList<>();

  @Option(names = "--stop-token-id", paramLabel = "ID", description = "Stop token id (repeatable).")
  List<Integer> stopTokenIds = new ArrayList<>();

  @Option(names = "--ignore-eos", description = "Keep generating after EOS.")
  boolean ignoreEos;

  @Option(
      names = "--logprobs",
      paramLabel = "N",
      defaultValue = "0",
      description = "Return the chosen tokens' log-probabilities.")
  int logprobs;

  SamplingParams params() {
    SamplingParams.Builder b =
        SamplingParams.builder()
            .maxTokens(maxTokens)
            .minTokens(minTokens)
            .temperature(temperature)
            .topP(topP)
            .topK(topK)
            .minP(minP)
            .repetitionPenalty(repetitionPenalty)
            .presencePenalty(presencePenalty)
            .frequencyPenalty(frequencyPenalty)
            .stop(stop)
            .stopTokenIds(stopTokenIds)
            .ignoreEos(ignoreEos)
            .logprobs(logprobs);
    if (seed != null) {
      b.seed(seed);
    }
    return b.build();
  }

  /** The command-line option that sets a request field, for error messages. */
  static String optionFor(String field) {
    return OPTIONS.getOrDefault(field, "--" + field.replace('_', '-'));
  }

  private static final Map<String, String> OPTIONS =
      Map.of(
          "prompt",
          "--prompt",
          "messages",
          "--prompt",
          "prompt_token_ids",
          "--prompt",
          "stop_token_ids",
          "--stop-token-id");
}
