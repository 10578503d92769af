package dev.pdserve.prefill;

import com.google.common.base.Ticker;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvPusher;
import dev.pdserve.core.kv.PrefixHasher;
import dev.pdserve.model.engine.ExpertBackend;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.tokenizer.Tokenizer;
import dev.pdserve.model.vision.EncoderCache;
import dev.pdserve.model.vision.VisionEncoder;
import java.util.Objects;

/**
 * What a {@link PrefillEngine} is built from. The engine owns none of these: the caller closes the
 * runner, the pool and the pusher after the engine.
 *
 * @param runner the model's forward pass
 * @param experts where routed experts run (in-process or remote shards)
 * @param pool the worker's KV pool: prompts' KV is computed into it
 * @param pusher opens KV pushes to decode nodes
 * @param tokenizer for the end-of-sequence id the first token's sampler needs
 * @param options chunk and step budgets
 * @param metrics what the engine measures ({@link PrefillMetrics#NONE} for nothing)
 * @param prefixHasher hashes of prompts' full blocks, of the pool's block size: prompts' full
 *     blocks are kept in a prefix cache over the pool and reused by later prompts sharing a prefix;
 *     null for no prefix caching
 * @param ticker the clock a drain's bound is measured on ({@link Ticker#systemTicker()})
 * @param visionEncoder encodes prompts' images (a model with a vision config); null: prompts with
 *     images are refused
 * @param encoderCache images' encoded rows by digest, with {@code visionEncoder}
 */
public record PrefillEngineSettings(
    ModelRunner runner,
    ExpertBackend experts,
    KvBlockPool pool,
    KvPusher pusher,
    Tokenizer tokenizer,
    PrefillOptions options,
    PrefillMetrics metrics,
    PrefixHasher prefixHasher,
    Ticker ticker,
    VisionEncoder visionEncoder,
    EncoderCache encoderCache) {
  public PrefillEngineSettings {
    Objects.requireNonNull(runner, "runner");
    Objects.requireNonNull(experts, "experts");
    Objects.requireNonNull(pool, "pool");
    Objects.requireNonNull(pusher, "pusher");
    Objects.requireNonNull(tokenizer, "tokenizer");
    Objects.requireNonNull(options, "options");
    Objects.requireNonNull(metrics, "metrics");
    Objects.requireNonNull(ticker, "ticker");
    if ((visionEncoder == null) != (encoderCache == null)) {
      throw new IllegalArgumentException("a vision encoder and its encoder cache go together");
    }
    if (prefixHasher != null && prefixHasher.blockSize() != pool.layout().blockSize()) {
      throw new IllegalArgumentException(
          "prefix hasher block size "
              + prefixHasher.blockSize()
              + " must equal the KV block size "
              + pool.layout().blockSize());
    }
  }

  /**
   * Settings over these parts with {@link PrefillOptions#defaults()}, no metrics, no prefix cache,
   * no images and the system clock, each changeable on the builder.
   */
  public static Builder builder(
      ModelRunner runner,
      ExpertBackend experts,
      KvBlockPool pool,
      KvPusher pusher,
      Tokenizer tokenizer) {
    return new Builder(runner, experts, pool, pusher, tokenizer);
  }

  /** Builds {@link PrefillEngineSettings}; the optional parts start at their defaults. */
  public static final class Builder {
    private final ModelRunner runner;
    private final ExpertBackend experts;
    private final KvBlockPool pool;
    private final KvPusher pusher;
    private final Tokenizer tokenizer;
    private PrefillOptions options = PrefillOptions.defaults();
    private PrefillMetrics metrics = PrefillMetrics.NONE;
    private PrefixHasher prefixHasher;
    private Ticker ticker = Ticker.systemTicker();
    private VisionEncoder visionEncoder;
    private EncoderCache encoderCache;

    private Builder(
        ModelRunner runner,
        ExpertBackend experts,
        KvBlockPool pool,
        KvPusher pusher,
        Tokenizer tokenizer) {
      this.runner = runner;
      this.experts = experts;
      this.pool = pool;
      this.pusher = pusher;
      this.tokenizer = tokenizer;
    }

    public Builder options(PrefillOptions options) {
      this.options = options;
      return this;
    }

    public Builder metrics(PrefillMetrics metrics) {
      this.metrics = metrics;
      return this;
    }

    /** Turns prefix caching on with this hasher; null turns it off. */
    public Builder prefixHasher(PrefixHasher prefixHasher) {
      this.prefixHasher = prefixHasher;
      return this;
    }

    public Builder ticker(Ticker ticker) {
      this.ticker = ticker;
      return this;
    }

    /** Takes prompts with images, encoded by {@code encoder} through {@code cache}. */
    public Builder vision(VisionEncoder encoder, EncoderCache cache) {
      this.visionEncoder = encoder;
      this.encoderCache = cache;
      return this;
    }

    public PrefillEngineSettings build() {
      return new PrefillEngineSettings(
          runner,
          experts,
          pool,
          pusher,
          tokenizer,
          options,
          metrics,
          prefixHasher,
          ticker,
          visionEncoder,
          encoderCache);
    }
  }
}
