package dev.pdserve.decode;

import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvEndpoint;
import dev.pdserve.core.kv.KvPush;
import dev.pdserve.core.kv.KvPusher;
import dev.pdserve.core.kv.PagedSequenceKv;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.GenerationState;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.PrefillInputs;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.engine.SequenceKv;
import dev.pdserve.model.engine.SequenceStep;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.sampling.Sampler;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.vision.EncodedImage;
import java.util.List;
import java.util.function.Function;

/**
 * The {@code tiny} preset with real ORT sessions: the single-process reference engine (the oracle
 * of greedy tokens), whose runner and experts the decode engines under test share, and a prefill
 * node's part of a request — a prompt's KV and first token, pushed to a decode node.
 */
final class TinyModel implements AutoCloseable {
  private final LoadedModel model = LoadedModel.load(ModelSpec.preset("tiny"));
  final ReferenceEngine reference = new ReferenceEngine(model, OrtRuntime.shared());

  /** Greedy sampling of exactly {@code maxTokens} tokens (EOS ignored). */
  static SamplingParams greedy(int maxTokens) {
    return SamplingParams.builder().temperature(0).maxTokens(maxTokens).ignoreEos(true).build();
  }

  /** A prompt as the byte tokenizer's ids. */
  int[] prompt(String text) {
    return model.tokenizer().encode(text);
  }

  /** What the single-process reference engine generates for a prompt with images, greedily. */
  int[] referenceTokens(ImagePrompt prompt, int maxTokens) {
    return reference
        .generate(new GenerateRequest("reference", prompt.source(), greedy(maxTokens), false))
        .tokenIds();
  }

  /** {@code text} with an image slot ({@link ImagePrompt#IMAGE}) for each image, rendered. */
  ImagePrompt imagePrompt(String text, EncodedImage... images) {
    return ImagePrompt.of(reference, text, images);
  }

  /** What the single-process reference engine generates for {@code prompt}, greedily. */
  int[] referenceTokens(int[] prompt, int maxTokens) {
    return reference
        .generate(new GenerateRequest("reference", Prompt.tokens(prompt), greedy(maxTokens), false))
        .tokenIds();
  }

  /**
   * Does what a prefill node does for a request: computes {@code prompt}'s KV in {@code
   * prefillPool}, samples the first token, and pushes the KV to transfer {@code transferId} at
   * {@code target}; the KV leaves the prefill pool afterwards.
   *
   * @return the first token
   */
  int prefillAndPush(
      int[] prompt,
      SamplingParams params,
      KvBlockPool prefillPool,
      KvPusher pusher,
      KvEndpoint target,
      String transferId) {
    return prefillAndPush(
        prompt,
        kv -> SequenceStep.text(prompt, kv, true),
        params,
        prefillPool,
        pusher,
        target,
        transferId);
  }

  /**
   * {@link #prefillAndPush(int[], SamplingParams, KvBlockPool, KvPusher, KvEndpoint, String)} for a
   * prompt with images: its image rows, vision flags and 3-D positions.
   */
  int prefillAndPush(
      ImagePrompt prompt,
      SamplingParams params,
      KvBlockPool prefillPool,
      KvPusher pusher,
      KvEndpoint target,
      String transferId) {
    PrefillInputs in =
        PrefillInputs.of(
            prompt.rendered(),
            reference.config(),
            reference.runner(),
            reference.visionEncoder().orElseThrow());
    return prefillAndPush(
        prompt.ids(), kv -> in.step(kv, true), params, prefillPool, pusher, target, transferId);
  }

  private int prefillAndPush(
      int[] prompt,
      Function<SequenceKv, SequenceStep> step,
      SamplingParams params,
      KvBlockPool prefillPool,
      KvPusher pusher,
      KvEndpoint target,
      String transferId) {
    try (PagedSequenceKv kv = new PagedSequenceKv(prefillPool)) {
      float[] logits = reference.runner().forward(List.of(step.apply(kv)), reference.experts())[0];
      GenerationState state =
          new GenerationState("prefill", prompt, params, 1, reference.tokenizer());
      int first = state.sample(logits, new Sampler(reference.tokenizer().eosId())).tokenId();
      try (KvPush push = pusher.open(target, transferId)) {
        for (int layer = 0; layer < prefillPool.layout().layers(); layer++) {
          push.sendLayer(layer, kv, 0, prompt.length);
        }
        push.complete();
      }
      return first;
    }
  }

  @Override
  public void close() {
    reference.close();
    model.close();
  }
}
