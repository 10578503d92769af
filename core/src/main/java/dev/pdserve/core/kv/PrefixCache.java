package dev.pdserve.core.kv;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;

/**
 * Full KV blocks of earlier prompts, kept in a {@link KvBlockPool} after their requests ended and
 * found again by chained block hash ({@link PrefixHasher}), so a later prompt that shares a prefix
 * reuses them and computes only the rest.
 *
 * <p>Blocks are reference-counted: a prompt that uses a cached prefix pins its blocks ({@link
 * #acquire}) until it is done ({@link #release} or {@link #commit}). Unpinned blocks are evicted
 * least recently used first whenever the pool runs short (the cache is the pool's {@link
 * KvBlockPool.Reclaimer}), so cached blocks never starve a live request: they count as available. A
 * chain is touched from its last block to its first, so eviction takes a prefix's tail before its
 * head and a hit on a short common prefix (a system prompt) keeps it.
 *
 * <p>Lookups compare each block's tokens too — and, for a block of a prompt with images, the image
 * part of its key ({@link PrefixHasher.Blocks}: the digests and offsets of the images it holds) —
 * so a 64-bit hash collision cannot hand out foreign KV. Thread-safe; lock order is cache, then
 * pool.
 */
public final class PrefixCache implements KvBlockPool.Reclaimer {
  private final KvBlockPool pool;
  private final int blockSize;
  private final LinkedHashMap<Long, Entry> entries =
      new LinkedHashMap<>(256, 0.75f, true); // LRU order
  private int pinned; // entries with refs > 0
  private long queriedTokens;
  private long hitTokens;
  private long evictedBlocks;
  private long insertedBlocks;

  private static final class Entry {
    final long hash;
    final long parent; // hash of the previous block; meaningless for a chain's first block
    final boolean first;
    final int[] tokens;
    final byte[] imageKey; // null for a block of text only
    final int block;
    int refs;

    Entry(long hash, long parent, boolean first, int[] tokens, byte[] imageKey, int block) {
      this.hash = hash;
      this.parent = parent;
      this.first = first;
      this.tokens = tokens;
      this.imageKey = imageKey;
      this.block = block;
    }
  }

  /**
   * Cached blocks a prompt uses, pinned until {@link #release} or {@link #commit}.
   *
   * @param hashes the matched blocks' hashes, in prompt order
   * @param blocks the pool blocks holding them, in prompt order
   * @param tokens positions they cover ({@code blocks.length × blockSize})
   */
  public record Match(long[] hashes, int[] blocks, int tokens) {
    public static final Match NONE = new Match(new long[0], new int[0], 0);

    public int length() {
      return blocks.length;
    }
  }

  /** A snapshot of the cache's figures. Queries and hits are counted in prompt tokens. */
  public record Stats(
      int cachedBlocks,
      int pinnedBlocks,
      long queriedTokens,
      long hitTokens,
      long insertedBlocks,
      long evictedBlocks) {}

  /** A cache over {@code pool}; it becomes the pool's reclaimer. */
  public PrefixCache(KvBlockPool pool) {
    this.pool = pool;
    this.blockSize = pool.layout().blockSize();
    pool.setReclaimer(this);
  }

  public int blockSize() {
    return blockSize;
  }

  /**
   * Finds the longest cached prefix of {@code prompt} (at most {@code maxBlocks} blocks, whose
   * hashes are {@code hashes}) and pins its blocks. Counts nothing: see {@link #record}.
   */
  public Match acquire(long[] hashes, int[] prompt, int maxBlocks) {
    return acquire(PrefixHasher.Blocks.text(hashes), prompt, maxBlocks);
  }

  /**
   * Finds the longest cached prefix of {@code prompt} (at most {@code maxBlocks} blocks, keyed by
   * {@code keys}) and pins its blocks. Counts nothing: see {@link #record}.
   */
  public synchronized Match acquire(PrefixHasher.Blocks keys, int[] prompt, int maxBlocks) {
    long[] hashes = keys.hashes();
    int n = Math.min(hashes.length, maxBlocks);
    int m = 0;
    while (m < n && matches(entries.get(hashes[m]), m, keys, prompt)) {
      m++;
    }
    if (m == 0) {
      return Match.NONE;
    }
    int[] blocks = new int[m];
    for (int i = m - 1; i >= 0; i--) { // tail first: the head ends most recently used
      Entry e = entries.get(hashes[i]);
      if (e.refs++ == 0) {
        pinned++;
      }
      blocks[i] = e.block;
    }
    return new Match(Arrays.copyOf(hashes, m), blocks, m * blockSize);
  }

  /** Counts one prompt of {@code promptTokens} of which {@code hitTokens} came from the cache. */
  public synchronized void record(int promptTokens, int hitTokens) {
    this.queriedTokens += promptTokens;
    this.hitTokens += hitTokens;
  }

  /** Unpins a match whose prompt will not commit (failed, cancelled, or waiting to start). */
  public synchronized void release(Match match) {
    for (int i = match.length() - 1; i >= 0; i--) {
      unpin(match.hashes()[i]);
    }
  }

  /**
   * Ends a prompt that used {@code match} and computed the rest: {@code table} is its whole block
   * table (from {@link PagedSequenceKv#detach()}), {@code hashes} the hashes of its full prompt
   * blocks. Unpins the match, keeps the newly computed full blocks (a block whose prefix another
   * prompt cached meanwhile is freed instead), and frees every other block of the table.
   *
   * @return the prompt's leading full blocks the cache now holds
   */
  public int commit(Match match, long[] hashes, int[] prompt, int[] table) {
    return commit(match, PrefixHasher.Blocks.text(hashes), prompt, table);
  }

  /**
   * {@link #commit(Match, long[], int[], int[])} of a prompt whose blocks are keyed by {@code
   * keys}.
   */
  public synchronized int commit(Match match, PrefixHasher.Blocks keys, int[] prompt, int[] table) {
    long[] hashes = keys.hashes();
    int m = match.length();
    int full = Math.min(hashes.length, table.length);
    List<Integer> free = new ArrayList<>();
    for (int i = m; i < full; i++) {
      Entry have = entries.get(hashes[i]);
      if (have != null) {
        free.add(table[i]); // cached meanwhile (or a hash collision): ours is a duplicate
        continue;
      }
      int[] tokens = Arrays.copyOfRange(prompt, i * blockSize, (i + 1) * blockSize);
      entries.put(
          hashes[i],
          new Entry(
              hashes[i], i == 0 ? 0 : hashes[i - 1], i == 0, tokens, keys.imageKey(i), table[i]));
      insertedBlocks++;
    }
    for (int i = full; i < table.length; i++) {
      free.add(table[i]);
    }
    for (int i = full - 1; i >= 0; i--) { // tail first, as in acquire
      if (i < m) {
        unpin(hashes[i]);
      } else {
        entries.get(hashes[i]);
      }
    }
    if (!free.isEmpty()) {
      pool.free(free.stream().mapToInt(Integer::intValue).toArray());
    }
    return full;
  }

  /**
   * Evicts unpinned blocks, least recently used first, until {@code blocks} are freed or none is
   * left.
   */
  @Override
  public synchronized int reclaim(int blocks) {
    List<Integer> out = new ArrayList<>();
    for (Iterator<Entry> it = entries.values().iterator(); it.hasNext() && out.size() < blocks; ) {
      Entry e = it.next();
      if (e.refs == 0) {
        it.remove();
        out.add(e.block);
      }
    }
    if (!out.isEmpty()) {
      evictedBlocks += out.size();
      pool.free(out.stream().mapToInt(Integer::intValue).toArray());
    }
    return out.size();
  }

  @Override
  public synchronized int reclaimable() {
    return entries.size() - pinned;
  }

  @Override
  public synchronized int held() {
    return entries.size();
  }

  /** Evicts every unpinned block; returns how many. */
  public int clear() {
    return reclaim(Integer.MAX_VALUE);
  }

  public synchronized int pinnedBlocks() {
    return pinned;
  }

  /** Prompt tokens looked up so far (the {@code prefix_cache_queries} figure). */
  public synchronized long queriedTokens() {
    return queriedTokens;
  }

  /** Prompt tokens served from the cache so far (the {@code prefix_cache_hits} figure). */
  public synchronized long hitTokens() {
    return hitTokens;
  }

  public synchronized Stats stats() {
    return new Stats(
        entries.size(), pinned, queriedTokens, hitTokens, insertedBlocks, evictedBlocks);
  }

  private boolean matches(Entry e, int i, PrefixHasher.Blocks keys, int[] prompt) {
    long[] hashes = keys.hashes();
    if (e == null || e.first != (i == 0) || (i > 0 && e.parent != hashes[i - 1])) {
      return false;
    }
    return Arrays.equals(e.tokens, 0, blockSize, prompt, i * blockSize, (i + 1) * blockSize)
        && Arrays.equals(e.imageKey, keys.imageKey(i));
  }

  private void unpin(long hash) {
    Entry e = entries.get(hash);
    if (e == null || e.refs == 0) {
      throw new IllegalStateException("prefix block " + Long.toHexString(hash) + " is not pinned");
    }
    if (--e.refs == 0) {
      pinned--;
    }
  }
}
