package dev.pdserve.model.engine;

import dev.pdserve.model.sampling.FinishReason;
import dev.pdserve.model.sampling.SampleResult;
import dev.pdserve.model.sampling.Sampler;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.sampling.StopChecker;
import dev.pdserve.model.sampling.TokenHistory;
import dev.pdserve.model.tokenizer.Tokenizer;

/**
 * The output side of one request: token history for sampling, and stop handling with incremental
 * detokenization. Sampling is stateless per step (a function of the seed, the history and the
 * logits), so the same request continued on another node samples the same tokens. Not thread-safe:
 * one owner thread at a time.
 */
public final class GenerationState {
  private final String requestId;
  private final SamplingParams params;
  private final long seed;
  private final TokenHistory history;
  private final StopChecker stop;
  private FinishReason finish;

  public GenerationState(
      String requestId, int[] promptIds, SamplingParams params, long seed, Tokenizer tokenizer) {
    this.requestId = requestId;
    this.params = params;
    this.seed = seed;
    this.history = new TokenHistory(promptIds);
    this.stop = new StopChecker(tokenizer, params, promptIds, true);
  }

  public String requestId() {
    return requestId;
  }

  public SamplingParams params() {
    return params;
  }

  public long seed() {
    return seed;
  }

  public int[] promptIds() {
    return history.promptIds();
  }

  public int[] generatedIds() {
    return history.generatedIds();
  }

  public int generated() {
    return history.generatedCount();
  }

  /** Samples the next token from the logits of the last position (does not accept it). */
  public SampleResult sample(float[] logits, Sampler sampler) {
    return sampler.sample(logits, params, history, seed);
  }

  /** Takes the next token into the output; the emission says whether the request finished. */
  public Emission accept(int token, double logprob) {
    if (finish != null) {
      throw new IllegalStateException(
          "request " + requestId + " already finished (" + finish.wireName() + ")");
    }
    history.append(token);
    StopChecker.Step step = stop.accept(token);
    String reason = null;
    if (step.finished()) {
      finish = step.finishReason();
      reason =
          step.stopString() != null
              ? step.stopString()
              : step.stopTokenId() >= 0 ? Integer.toString(step.stopTokenId()) : null;
    }
    return new Emission(token, step.delta(), logprob, finish, reason);
  }

  /** Ends the request without a finish of its own (client abort); returns held-back text. */
  public Emission abort() {
    if (finish != null) {
      return new Emission(-1, "", Double.NaN, finish, null);
    }
    finish = FinishReason.ABORT;
    return new Emission(-1, stop.abort().delta(), Double.NaN, finish, null);
  }

  public boolean finished() {
    return finish != null;
  }

  public FinishReason finishReason() {
    return finish;
  }

  public String text() {
    return stop.text();
  }
}
