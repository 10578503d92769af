package dev.pdserve.decode;

import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvIntake;
import dev.pdserve.model.engine.ExpertBackend;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.tokenizer.Tokenizer;
import dev.pdserve.model.vision.EncoderCache;
import dev.pdserve.model.vision.VisionEncoder;

/**
 * What a {@link DecodeEngine} runs on; its owner keeps and closes each of them.
 *
 * @param runner the model's forward pass
 * @param experts the routed experts (in process or on shards)
 * @param pool the node's paged KV pool, which reservations take blocks from
 * @param kvIntake where reserved blocks receive their KV (the node's KV transfer endpoint)
 * @param tokenizer decodes generated tokens into text
 * @param visionEncoder encodes the images of prompts prefilled here (a model with a vision config);
 *     null: a local prefill with images is refused
 * @param encoderCache images' encoded rows by digest, with {@code visionEncoder}
 */
public record DecodeResources(
    ModelRunner runner,
    ExpertBackend experts,
    KvBlockPool pool,
    KvIntake kvIntake,
    Tokenizer tokenizer,
    VisionEncoder visionEncoder,
    EncoderCache encoderCache) {
  public DecodeResources {
    if ((visionEncoder == null) != (encoderCache == null)) {
      throw new IllegalArgumentException("a vision encoder and its encoder cache go together");
    }
  }

  /** Resources of a node that takes no images. */
  public DecodeResources(
      ModelRunner runner,
      ExpertBackend experts,
      KvBlockPool pool,
      KvIntake kvIntake,
      Tokenizer tokenizer) {
    this(runner, experts, pool, kvIntake, tokenizer, null, null);
  }
}
