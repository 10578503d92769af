package dev.pdserve.model.sampling;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Objects;
import java.util.OptionalLong;

/**
 * How to pick tokens and when to stop, named as vLLM names them.
 *
 * <p>The constructor only normalises (null lists become empty, lists are copied); {@link #validate}
 * checks the values against a prompt, a context window and a vocabulary, as an API edge must.
 *
 * @param temperature 0 (below {@link #GREEDY_EPSILON}) is greedy; otherwise logits are divided by
 *     it
 * @param topP nucleus size in (0, 1]; 1 is off
 * @param topK keep the k most likely tokens; 0 or -1 is off
 * @param minP drop tokens less likely than {@code minP} times the most likely one; 0 is off
 * @param repetitionPenalty on prompt and output tokens: positive logits divided, negative
 *     multiplied; 1 is off
 * @param presencePenalty subtracted once from every token already in the output; in [-2, 2]
 * @param frequencyPenalty subtracted per occurrence in the output; in [-2, 2]
 * @param seed a client seed makes sampling reproducible; empty means the server picks one
 * @param maxTokens tokens to generate at most (the stop token included)
 * @param minTokens EOS and stop tokens/strings are not honoured before this many tokens
 * @param stop stop strings; the output ends before the first one and excludes it
 * @param stopTokenIds tokens that stop generation (included in the token ids, not in the text)
 * @param ignoreEos keep generating past EOS
 * @param logprobs number of top log-probabilities to return per token; 0 is none
 */
public record SamplingParams(
    double temperature,
    double topP,
    int topK,
    double minP,
    double repetitionPenalty,
    double presencePenalty,
    double frequencyPenalty,
    OptionalLong seed,
    int maxTokens,
    int minTokens,
    List<String> stop,
    List<Integer> stopTokenIds,
    boolean ignoreEos,
    int logprobs) {

  /** Temperatures below this are greedy (vLLM's {@code _SAMPLING_EPS}). */
  public static final double GREEDY_EPSILON = 1e-5;

  /** Most top log-probabilities a request may ask for (vLLM's default {@code max_logprobs}). */
  public static final int MAX_LOGPROBS = 20;

  public SamplingParams {
    seed = seed == null ? OptionalLong.empty() : seed;
    // Copies that keep null elements, so that validate() can name them instead of an NPE here.
    stop = stop == null ? List.of() : Collections.unmodifiableList(new ArrayList<>(stop));
    stopTokenIds =
        stopTokenIds == null
            ? List.of()
            : Collections.unmodifiableList(new ArrayList<>(stopTokenIds));
  }

  /** Defaults: temperature 1, no truncation, no penalties, 16 tokens. */
  public static SamplingParams defaults() {
    return builder().build();
  }

  /** Greedy decoding of at most {@code maxTokens} tokens. */
  public static SamplingParams greedy(int maxTokens) {
    return builder().temperature(0).maxTokens(maxTokens).build();
  }

  public static Builder builder() {
    return new Builder();
  }

  /** A builder holding these values. */
  public Builder toBuilder() {
    return new Builder()
        .temperature(temperature)
        .topP(topP)
        .topK(topK)
        .minP(minP)
        .repetitionPenalty(repetitionPenalty)
        .presencePenalty(presencePenalty)
        .frequencyPenalty(frequencyPenalty)
        .seed(seed)
        .maxTokens(maxTokens)
        .minTokens(minTokens)
        .stop(stop)
        .stopTokenIds(stopTokenIds)
        .ignoreEos(ignoreEos)
        .logprobs(logprobs);
  }

  public boolean isGreedy() {
    return temperature < GREEDY_EPSILON;
  }

  public boolean hasPenalties() {
    return repetitionPenalty != 1.0 || presencePenalty != 0.0 || frequencyPenalty != 0.0;
  }

  /**
   * Checks every value, then that prompt and completion fit the context window.
   *
   * @param promptTokens tokens in the prompt
   * @param contextLimit the model's maximum context length (prompt + completion)
   * @param vocabSize ids must be below this
   * @throws InvalidRequestException naming the first offending field
   */
  public void validate(int promptTokens, int contextLimit, int vocabSize) {
    if (contextLimit < 1 || vocabSize < 1) {
      throw new IllegalArgumentException(
          "contextLimit and vocabSize must be >= 1, got " + contextLimit + " and " + vocabSize);
    }
    check(promptTokens >= 1, "prompt", "prompt has " + promptTokens + " tokens; give at least one");
    check(maxTokens >= 1, "max_tokens", "max_tokens must be >= 1, got " + maxTokens);
    check(
        !(temperature < 0) && !Double.isNaN(temperature),
        "temperature",
        "temperature must be >= 0, got " + temperature);
    check(
        Double.isFinite(temperature),
        "temperature",
        "temperature must be finite, got " + temperature);
    check(topP > 0 && topP <= 1, "top_p", "top_p must be in (0, 1], got " + topP);
    check(topK >= -1, "top_k", "top_k must be -1, 0 or >= 1, got " + topK);
    check(minP >= 0 && minP <= 1, "min_p", "min_p must be in [0, 1], got " + minP);
    check(
        repetitionPenalty > 0 && Double.isFinite(repetitionPenalty),
        "repetition_penalty",
        "repetition_penalty must be > 0, got " + repetitionPenalty);
    check(
        presencePenalty >= -2 && presencePenalty <= 2,
        "presence_penalty",
        "presence_penalty must be in [-2, 2], got " + presencePenalty);
    check(
        frequencyPenalty >= -2 && frequencyPenalty <= 2,
        "frequency_penalty",
        "frequency_penalty must be in [-2, 2], got " + frequencyPenalty);
    check(minTokens >= 0, "min_tokens", "min_tokens must be >= 0, got " + minTokens);
    check(
        minTokens <= maxTokens,
        "min_tokens",
        "min_tokens must be <= max_tokens, got min_tokens "
            + minTokens
            + " > max_tokens "
            + maxTokens);
    check(
        logprobs >= 0 && logprobs <= MAX_LOGPROBS,
        "logprobs",
        "logprobs must be in [0, " + MAX_LOGPROBS + "], got " + logprobs);
    for (int i = 0; i < stop.size(); i++) {
      String s = stop.get(i);
      check(s != null && !s.isEmpty(), "stop", "stop[" + i + "] must be a non-empty string");
    }
    for (int i = 0; i < stopTokenIds.size(); i++) {
      Integer id = stopTokenIds.get(i);
      check(id != null, "stop_token_ids", "stop_token_ids[" + i + "] must not be null");
      check(
          id >= 0 && id < vocabSize,
          "stop_token_ids",
          "stop_token_ids["
              + i
              + "] = "
              + id
              + " is outside the vocabulary (0.."
              + (vocabSize - 1)
              + ")");
    }
    long requested = (long) promptTokens + maxTokens;
    if (requested > contextLimit) {
      throw new InvalidRequestException(
          promptTokens >= contextLimit ? "prompt" : "max_tokens",
          "This model's maximum context length is "
              + contextLimit
              + " tokens. However, you requested "
              + requested
              + " tokens ("
              + promptTokens
              + " in the messages, "
              + maxTokens
              + " in the completion). Please reduce"
              + " the length of the messages or completion.");
    }
  }

  private static void check(boolean ok, String field, String message) {
    if (!ok) {
      throw new InvalidRequestException(field, message);
    }
  }

  /** Fluent builder; starts from the defaults. Not thread-safe. */
  public static final class Builder {
    private double temperature = 1.0;
    private double topP = 1.0;
    private int topK = 0;
    private double minP = 0.0;
    private double repetitionPenalty = 1.0;
    private double presencePenalty = 0.0;
    private double frequencyPenalty = 0.0;
    private OptionalLong seed = OptionalLong.empty();
    private int maxTokens = 16;
    private int minTokens = 0;
    private List<String> stop = new ArrayList<>();
    private List<Integer> stopTokenIds = new ArrayList<>();
    private boolean ignoreEos = false;
    private int logprobs = 0;

    private Builder() {}

    public Builder temperature(double v) {
      temperature = v;
      return this;
    }

    public Builder topP(double v) {
      topP = v;
      return this;
    }

    public Builder topK(int v) {
      topK = v;
      return this;
    }

    public Builder minP(double v) {
      minP = v;
      return this;
    }

    public Builder repetitionPenalty(double v) {
      repetitionPenalty = v;
      return this;
    }

    public Builder presencePenalty(double v) {
      presencePenalty = v;
      return this;
    }

    public Builder frequencyPenalty(double v) {
      frequencyPenalty = v;
      return this;
    }

    public Builder seed(long v) {
      seed = OptionalLong.of(v);
      return this;
    }

    public Builder seed(OptionalLong v) {
      seed = Objects.requireNonNull(v, "seed");
      return this;
    }

    public Builder maxTokens(int v) {
      maxTokens = v;
      return this;
    }

    public Builder minTokens(int v) {
      minTokens = v;
      return this;
    }

    public Builder stop(List<String> v) {
      stop = new ArrayList<>(v);
      return this;
    }

    public Builder stop(String... v) {
      return stop(List.of(v));
    }

    public Builder stopTokenIds(List<Integer> v) {
      stopTokenIds = new ArrayList<>(v);
      return this;
    }

    public Builder stopTokenIds(int... v) {
      List<Integer> ids = new ArrayList<>(v.length);
      for (int id : v) {
        ids.add(id);
      }
      stopTokenIds = ids;
      return this;
    }

    public Builder ignoreEos(boolean v) {
      ignoreEos = v;
      return this;
    }

    public Builder logprobs(int v) {
      logprobs = v;
      return this;
    }

    public SamplingParams build() {
      return new SamplingParams(
          temperature,
          topP,
          topK,
          minP,
          repetitionPenalty,
          presencePenalty,
          frequencyPenalty,
          seed,
          maxTokens,
          minTokens,
          stop,
          stopTokenIds,
          ignoreEos,
          logprobs);
    }
  }
}
