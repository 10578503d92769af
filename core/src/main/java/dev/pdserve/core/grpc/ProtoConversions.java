package dev.pdserve.core.grpc;

import dev.pdserve.api.v1.Completion;
import dev.pdserve.api.v1.TokenDelta;
import dev.pdserve.api.v1.Usage;
import dev.pdserve.model.engine.Emission;
import dev.pdserve.model.sampling.SamplingParams;

/** Converts between the wire messages and the engine's types, in one place for every node. */
public final class ProtoConversions {
  private ProtoConversions() {}

  /** Wire sampling parameters to the engine's, with vLLM's defaults for unset fields. */
  public static SamplingParams sampling(dev.pdserve.api.v1.SamplingParams p) {
    SamplingParams d = SamplingParams.defaults();
    SamplingParams.Builder b = d.toBuilder();
    if (p.hasTemperature()) {
      b.temperature(p.getTemperature());
    }
    if (p.hasTopP()) {
      b.topP(p.getTopP());
    }
    if (p.hasTopK()) {
      b.topK(p.getTopK());
    }
    if (p.hasMinP()) {
      b.minP(p.getMinP());
    }
    if (p.hasMaxTokens()) {
      b.maxTokens(p.getMaxTokens());
    }
    if (p.hasMinTokens()) {
      b.minTokens(p.getMinTokens());
    }
    b.stop(p.getStopList());
    b.stopTokenIds(p.getStopTokenIdsList());
    if (p.hasSeed()) {
      b.seed(p.getSeed());
    }
    if (p.hasIgnoreEos()) {
      b.ignoreEos(p.getIgnoreEos());
    }
    if (p.hasPresencePenalty()) {
      b.presencePenalty(p.getPresencePenalty());
    }
    if (p.hasFrequencyPenalty()) {
      b.frequencyPenalty(p.getFrequencyPenalty());
    }
    if (p.hasRepetitionPenalty()) {
      b.repetitionPenalty(p.getRepetitionPenalty());
    }
    if (p.hasLogprobs()) {
      b.logprobs(p.getLogprobs());
    }
    return b.build();
  }

  /** The engine's sampling parameters on the wire (every field set explicitly). */
  public static dev.pdserve.api.v1.SamplingParams sampling(SamplingParams s) {
    dev.pdserve.api.v1.SamplingParams.Builder b =
        dev.pdserve.api.v1.SamplingParams.newBuilder()
            .setTemperature((float) s.temperature())
            .setTopP((float) s.topP())
            .setTopK(s.topK())
            .setMinP((float) s.minP())
            .setMaxTokens(s.maxTokens())
            .setMinTokens(s.minTokens())
            .addAllStop(s.stop())
            .addAllStopTokenIds(s.stopTokenIds())
            .setIgnoreEos(s.ignoreEos())
            .setPresencePenalty((float) s.presencePenalty())
            .setFrequencyPenalty((float) s.frequencyPenalty())
            .setRepetitionPenalty((float) s.repetitionPenalty())
            .setLogprobs(s.logprobs());
    s.seed().ifPresent(b::setSeed);
    return b.build();
  }

  public static TokenDelta delta(Emission e, boolean withLogprobs) {
    TokenDelta.Builder d = TokenDelta.newBuilder().setText(e.text());
    if (e.tokenId() >= 0) {
      d.addTokenIds(e.tokenId());
      if (withLogprobs) {
        d.addLogprobs((float) e.logprob());
      }
    }
    return d.build();
  }

  public static Completion completion(
      String finishReason,
      String stopReason,
      int promptTokens,
      int completionTokens,
      int cachedTokens) {
    Completion.Builder c =
        Completion.newBuilder()
            .setFinishReason(finishReason)
            .setUsage(
                Usage.newBuilder()
                    .setPromptTokens(promptTokens)
                    .setCompletionTokens(completionTokens)
                    .setCachedTokens(cachedTokens));
    if (stopReason != null) {
      c.setStopReason(stopReason);
    }
    return c.build();
  }
}
