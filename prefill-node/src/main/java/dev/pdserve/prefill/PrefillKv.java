package dev.pdserve.prefill;

import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvEndpoint;
import dev.pdserve.core.kv.KvPoolExhaustedException;
import dev.pdserve.core.kv.KvPush;
import dev.pdserve.core.kv.KvPusher;
import dev.pdserve.core.kv.PagedSequenceKv;
import dev.pdserve.core.kv.PrefixCache;
import dev.pdserve.core.kv.PrefixHasher;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.model.vision.PromptImage;
import java.util.List;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The KV side of prefill prompts: a prompt's blocks in the pool (the longest cached prefix pinned
 * from the prefix cache, the rest allocated), its push to the decode node (the cached prefix first,
 * then each layer as soon as the model wrote it), and at the end its full blocks kept in the prefix
 * cache, or everything freed.
 *
 * <p>Without a prefix hasher there is no prefix cache: every prompt is computed whole and its
 * blocks are freed once the decode node holds its KV.
 */
final class PrefillKv {
  private static final Logger LOG = LogManager.getLogger(PrefillKv.class);

  private final KvBlockPool pool;
  private final PrefixHasher hasher; // null: no prefix caching
  private final PrefixCache cache; // null: no prefix caching
  private final KvPusher pusher;
  private final PrefillMetrics metrics;
  private final String nodeId;

  /**
   * Over {@code pool}; a non-null {@code hasher} (of the pool's block size) adds a prefix cache.
   */
  PrefillKv(
      KvBlockPool pool,
      PrefixHasher hasher,
      KvPusher pusher,
      PrefillMetrics metrics,
      String nodeId) {
    this.pool = pool;
    this.hasher = hasher;
    this.cache = hasher == null ? null : new PrefixCache(pool);
    this.pusher = pusher;
    this.metrics = metrics;
    this.nodeId = nodeId;
  }

  /** The prefix cache, or null. */
  PrefixCache cache() {
    return cache;
  }

  KvBlockPool pool() {
    return pool;
  }

  /**
   * Keys of {@code prompt}'s full blocks (its images' digests mixed into the blocks that hold
   * them), for the prefix cache; null without one.
   */
  PrefixHasher.Blocks blockKeys(int[] prompt, List<PromptImage> images) {
    return hasher == null ? null : hasher.blocks(prompt, images);
  }

  /**
   * Gives {@code job} its KV: pins the longest cached prefix of its prompt (at most every block but
   * the one holding its last token, which is always computed for the first token's logits) and
   * allocates the rest. Counts the prefix cache lookup.
   *
   * @return false when the pool has too few free blocks now (nothing is held then)
   */
  boolean allocate(PrefillJobState job) {
    int[] prompt = job.prompt();
    int bs = pool.layout().blockSize();
    PrefixCache.Match m =
        cache == null
            ? PrefixCache.Match.NONE
            : cache.acquire(job.blockKeys(), prompt, (prompt.length - 1) / bs);
    try {
      int[] blocks = pool.allocate(pool.layout().blocksFor(prompt.length) - m.length());
      job.holdKv(
          m.length() == 0
              ? PagedSequenceKv.withReservation(pool, blocks)
              : PagedSequenceKv.withSharedPrefix(pool, m.blocks(), blocks),
          m.length() == 0 ? null : m);
    } catch (KvPoolExhaustedException e) {
      if (cache != null) {
        cache.release(m);
      }
      return false;
    }
    if (cache != null) {
      cache.record(prompt.length, m.tokens());
      metrics.prefixCacheQueried(prompt.length, m.tokens());
      if (m.tokens() > 0) {
        try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, job.requestId())) {
          LOG.debug(
              "request {}: {} of {} prompt tokens from the prefix cache",
              job.requestId(),
              m.tokens(),
              prompt.length);
        }
      }
    }
    job.startFromCachedPrefix(m.tokens());
    return true;
  }

  /**
   * Opens {@code job}'s push to its decode node, sends the cached prefix of every layer (the decode
   * node needs the whole prompt's KV) and streams each layer the model writes from now on.
   *
   * @throws RuntimeException when the decode node cannot be reached or the push fails
   */
  void openPush(PrefillJobState job) {
    PrefillJob spec = job.spec();
    KvPush push =
        pusher.open(new KvEndpoint(spec.flightHost(), spec.flightPort()), spec.transferId());
    job.setPush(push);
    PagedSequenceKv kv = job.kv();
    int cached = job.cachedTokens();
    for (int layer = 0; cached > 0 && layer < pool.layout().layers(); layer++) {
      push.sendLayer(layer, kv, 0, cached);
    }
    kv.setLayerWrittenListener(
        (layer, first, count) -> push.sendLayer(layer, kv, first, first + count));
  }

  /** Ends {@code job}'s push and frees its KV (it failed, or its decode node did not take it). */
  void release(PrefillJobState job) {
    job.releaseKv(cache);
  }

  /** After the decode node acknowledged {@code job}'s KV: full blocks to the cache, rest freed. */
  void commit(PrefillJobState job) {
    job.commitKv(cache);
  }
}
