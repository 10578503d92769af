package dev.pdserve.prefill;

import dev.pdserve.core.kv.KvPush;
import dev.pdserve.core.kv.PagedSequenceKv;
import dev.pdserve.core.kv.PrefixCache;
import dev.pdserve.core.kv.PrefixHasher;
import dev.pdserve.model.engine.PrefillInputs;
import dev.pdserve.model.engine.PromptImages;
import dev.pdserve.model.engine.SequenceKv;
import dev.pdserve.model.engine.SequenceStep;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One prompt's prefill as it goes: what was asked, how far it got, the KV it holds (its own blocks
 * and the cached prefix it pins), its push to the decode node, and the future its caller waits on.
 * A prompt with images also holds its checked images and, once they are encoded (before it is
 * queued for compute), its prefill inputs: image rows, vision flags and 3-D positions.
 *
 * <p>Progress is the prefill loop's alone; the KV and push are set by the loop when the prompt
 * starts and then ended by exactly one of the loop (failure) and the acknowledgement hand-off
 * (which takes the prompt over when its last chunk is computed), under this object's lock.
 */
final class PrefillJobState implements PrefillChunkScheduler.QueuedPrompt {
  private final PrefillJob spec;
  private final PrefixHasher.Blocks blockKeys; // of the prompt's full blocks, when caching
  private final PromptImages images; // null for a text prompt
  private volatile PrefillInputs inputs; // set once the images are encoded; null for text
  private final long queuedAtNanos;
  private final CompletableFuture<PrefillResult> result = new CompletableFuture<>();
  private final AtomicBoolean countedAsHoldingKv = new AtomicBoolean();
  private volatile boolean cancelled;

  // The loop's; read by the hand-off after the loop passed the prompt on.
  private int computed; // prompt tokens whose KV exists (the cached prefix included)
  private int cachedTokens;
  private long computeNanos;

  // Guarded by this.
  private PagedSequenceKv kv;
  private PrefixCache.Match pinned; // the cached prefix blocks this prompt reads
  private KvPush push;
  private int cachedPromptBlocks; // the prompt's leading blocks in the cache after commit

  /**
   * @param images the prompt's checked images; null for a text prompt
   */
  PrefillJobState(
      PrefillJob spec, PrefixHasher.Blocks blockKeys, PromptImages images, long queuedAtNanos) {
    this.spec = spec;
    this.blockKeys = blockKeys;
    this.images = images;
    this.queuedAtNanos = queuedAtNanos;
  }

  PrefillJob spec() {
    return spec;
  }

  String requestId() {
    return spec.requestId();
  }

  int[] prompt() {
    return spec.promptIds();
  }

  /** Keys of the prompt's full blocks; null without a prefix cache. */
  PrefixHasher.Blocks blockKeys() {
    return blockKeys;
  }

  /** The prompt's checked images; null for a text prompt. */
  PromptImages images() {
    return images;
  }

  /** The images are encoded: the prompt computes from {@code inputs}. */
  void setInputs(PrefillInputs inputs) {
    this.inputs = inputs;
  }

  long queuedAtNanos() {
    return queuedAtNanos;
  }

  CompletableFuture<PrefillResult> result() {
    return result;
  }

  @Override
  public int remainingTokens() {
    return spec.promptIds().length - computed;
  }

  @Override
  public synchronized boolean started() {
    return kv != null;
  }

  @Override
  public boolean cancelled() {
    return cancelled;
  }

  /** Asks the prompt to stop; the loop ends it at the next chunk boundary. */
  void cancel() {
    cancelled = true;
  }

  /**
   * The step computing the prompt's next {@code tokens} tokens into {@code kv}: text positions for
   * a text prompt; image rows, vision flags and 3-D positions for one with images (an image's
   * placeholders may be split between chunks).
   */
  SequenceStep nextChunk(int tokens, SequenceKv kv) {
    boolean last = isLastChunk(tokens);
    if (inputs == null) {
      return SequenceStep.text(
          Arrays.copyOfRange(spec.promptIds(), computed, computed + tokens), kv, last);
    }
    return inputs.chunk(computed, computed + tokens, kv, last);
  }

  /** Whether a chunk of {@code tokens} is the prompt's last. */
  boolean isLastChunk(int tokens) {
    return computed + tokens == spec.promptIds().length;
  }

  /** A chunk of {@code tokens} was computed in a step that took {@code stepNanos}. */
  void chunkComputed(int tokens, long stepNanos) {
    computed += tokens;
    computeNanos += stepNanos;
  }

  /** The prompt starts with {@code cachedTokens} positions served by the prefix cache. */
  void startFromCachedPrefix(int cachedTokens) {
    this.cachedTokens = cachedTokens;
    this.computed = cachedTokens;
  }

  int cachedTokens() {
    return cachedTokens;
  }

  long computeNanos() {
    return computeNanos;
  }

  /** Marks the prompt as holding KV; false if it was marked already. */
  boolean markHoldingKv() {
    return countedAsHoldingKv.compareAndSet(false, true);
  }

  /** Marks the prompt as holding no KV any more; false if it was not marked. */
  boolean clearHoldingKv() {
    return countedAsHoldingKv.compareAndSet(true, false);
  }

  synchronized void holdKv(PagedSequenceKv kv, PrefixCache.Match pinned) {
    this.kv = kv;
    this.pinned = pinned;
  }

  synchronized PagedSequenceKv kv() {
    return kv;
  }

  synchronized void setPush(KvPush push) {
    this.push = push;
  }

  synchronized KvPush push() {
    return push;
  }

  synchronized int cachedPromptBlocks() {
    return cachedPromptBlocks;
  }

  /**
   * Ends the push (first: once it returns no stream reads the blocks any more), frees the prompt's
   * own blocks and unpins its cached prefix. Idempotent.
   */
  synchronized void releaseKv(PrefixCache cache) {
    if (push != null) {
      push.close();
    }
    if (kv != null) {
      kv.release();
      kv = null;
    }
    if (pinned != null) {
      cache.release(pinned);
      pinned = null;
    }
  }

  /**
   * After the decode node acknowledged the KV: ends the push, keeps the prompt's full blocks in
   * {@code cache} (null: no cache, everything is freed) and frees the rest.
   */
  synchronized void commitKv(PrefixCache cache) {
    if (kv == null || cache == null) {
      releaseKv(cache);
      return;
    }
    if (push != null) {
      push.close();
    }
    cachedPromptBlocks =
        cache.commit(
            pinned == null ? PrefixCache.Match.NONE : pinned,
            blockKeys,
            spec.promptIds(),
            kv.detach());
    kv = null;
    pinned = null;
  }
}
