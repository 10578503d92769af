package dev.pdserve.decode;

import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvIntake;
import dev.pdserve.model.engine.ExpertBackend;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.tokenizer.Tokenizer;

/**
 * What a {@link DecodeEngine} runs on; its owner keeps and closes each of them.
 *
 * @param runner the model's forward pass
 * @param experts the routed experts (in process or on shards)
 * @param pool the node's paged KV pool, which reservations take blocks from
 * @param kvIntake where reserved blocks receive their KV (the node's KV transfer endpoint)
 * @param tokenizer decodes generated tokens into text
 */
public record DecodeResources(
    ModelRunner runner,
    ExpertBackend experts,
    KvBlockPool pool,
    KvIntake kvIntake,
    Tokenizer tokenizer) {}
