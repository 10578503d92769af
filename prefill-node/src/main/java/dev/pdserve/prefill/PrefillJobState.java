package dev.pdserve.prefill;

import dev.pdserve.core.kv.KvPush;
import dev.pdserve.core.kv.PagedSequenceKv;
import dev.pdserve.core.kv.PrefixCache;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One prompt's prefill as it goes: what was asked, how far it got, the KV it holds (its own blocks
 * and the cached prefix it pins), its push to the decode node, and the future its caller waits on.
 *
 * <p>Progress is the prefill loop's alone; the KV and push are set by the loop when the prompt
 * starts and then ended by exactly one of the loop (failure) and the acknowledgement hand-off
 * (which takes the prompt over when its last chunk is computed), under this object's lock.
 */
final class PrefillJobState implements PrefillChunkScheduler.QueuedPrompt {
  private final PrefillJob spec;
  private final long[] blockHashes; // of the prompt's full blocks, when caching
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

  PrefillJobState(PrefillJob spec, long[] blockHashes, long queuedAtNanos) {
    this.spec = spec;
    this.blockHashes = blockHashes;
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

  /** Hashes of the prompt's full blocks; null without a prefix cache. */
  long[] blockHashes() {
    return blockHashes;
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

  /** The prompt's next {@code tokens} tokens to compute. */
  int[] nextChunk(int tokens) {
    return Arrays.copyOfRange(spec.promptIds(), computed, computed + tokens);
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
            blockHashes,
            spec.promptIds(),
            kv.detach());
    kv = null;
    pinned = null;
  }
}
