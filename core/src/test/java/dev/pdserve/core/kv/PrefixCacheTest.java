package dev.pdserve.core.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.KvDtype;
import java.util.Arrays;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class PrefixCacheTest {
  private static final int BS = 4;
  private final KvLayout layout = new KvLayout(BS, 2, 1, 16, KvDtype.FP32);
  private final PrefixHasher hasher = PrefixHasher.text("tiny|seed42", BS);
  private BufferAllocator root;
  private KvBlockPool pool;
  private PrefixCache cache;

  @BeforeEach
  void setUp() {
    root = new RootAllocator();
    pool = new KvBlockPool(root, layout, 10L * layout.blockBytes());
    cache = new PrefixCache(pool);
  }

  @AfterEach
  void tearDown() {
    assertEquals(0, cache.pinnedBlocks(), "pins left at the end of the test");
    cache.clear();
    assertEquals(pool.totalBlocks(), pool.freeBlocks(), "blocks leaked");
    pool.close();
    root.close();
  }

  private static int[] prompt(int n, int salt) {
    int[] p = new int[n];
    for (int i = 0; i < n; i++) {
      p[i] = 100 + i + salt * 1000;
    }
    return p;
  }

  /** What a prefill node does with one prompt: match, compute the rest (here: nothing), commit. */
  private PrefixCache.Match serve(int[] prompt) {
    long[] hashes = hasher.hashes(prompt);
    PrefixCache.Match m = cache.acquire(hashes, prompt, (prompt.length - 1) / BS);
    PagedSequenceKv kv =
        PagedSequenceKv.withSharedPrefix(
            pool, m.blocks(), pool.allocate(layout.blocksFor(prompt.length) - m.length()));
    assertEquals(m.tokens(), kv.length(), "a shared prefix starts the sequence at its end");
    cache.record(prompt.length, m.tokens());
    cache.commit(m, hashes, prompt, kv.detach());
    return m;
  }

  @Test
  void hashesAreChainedAndKeyedByModelAndModality() {
    int[] a = prompt(12, 0);
    int[] b = a.clone();
    b[1]++; // differs in the first block only
    long[] ha = hasher.hashes(a);
    long[] hb = hasher.hashes(b);
    assertEquals(3, ha.length);
    for (int i = 0; i < 3; i++) {
      assertNotEquals(ha[i], hb[i], "block " + i + " hash must cover the whole prefix before it");
    }
    assertArrayEquals(
        ha,
        PrefixHasher.text("tiny|seed42", BS).hashes(a),
        "hashes must be reproducible (router and nodes agree)");
    assertNotEquals(
        ha[0],
        new PrefixHasher("tiny|seed42", "vision", BS).hashes(a)[0],
        "vision blocks must not alias text");
    assertNotEquals(
        ha[0],
        PrefixHasher.text("small|seed42", BS).hashes(a)[0],
        "another model's blocks must not alias");
    assertEquals(2, hasher.hashes(prompt(11, 0)).length, "only full blocks are hashed");
  }

  @Test
  void aSecondPromptSharingAPrefixReusesItsBlocksAndCountsHitsInTokens() {
    int[] first = prompt(14, 0); // 3 full blocks + 2 tokens
    assertEquals(0, serve(first).length());
    assertEquals(3, cache.stats().cachedBlocks());
    assertEquals(
        pool.totalBlocks() - 3,
        pool.freeBlocks(),
        "the partial last block is freed, full ones cached");
    assertEquals(3, pool.reclaimableBlocks());
    assertEquals(pool.totalBlocks(), pool.availableBlocks());

    int[] second = Arrays.copyOf(first, 20);
    for (int i = 8; i < 20; i++) {
      second[i] = 7; // shares the first two blocks only
    }
    PrefixCache.Match m = serve(second);
    assertEquals(2, m.length());
    assertEquals(8, m.tokens());
    assertEquals(14 + 20, cache.queriedTokens());
    assertEquals(8, cache.hitTokens());
    // blocks 0-1 shared, 2 of the first prompt, 2-4 of the second: 6 distinct cached blocks
    assertEquals(3 + 3, cache.stats().cachedBlocks());
  }

  @Test
  void aPromptExactlyCoveredByTheCacheStillComputesItsLastBlock() {
    int[] p = prompt(12, 1);
    serve(p);
    PrefixCache.Match m =
        serve(p); // maxBlocks = (12 - 1) / 4 = 2: the last token must be computed for logits
    assertEquals(2, m.length());
  }

  @Test
  void evictionUnderPressureTakesUnpinnedLeastRecentlyUsedTailsFirstAndNeverPinnedBlocks() {
    serve(prompt(17, 2)); // 4 cached blocks
    serve(prompt(17, 3)); // 4 more: 8 cached, 2 free
    int[] p2 = prompt(17, 2);
    PrefixCache.Match pinned = cache.acquire(hasher.hashes(p2), p2, 4);
    assertEquals(4, pinned.length());
    assertEquals(4, pool.reclaimableBlocks(), "pinned blocks are not reclaimable");
    int[] live = pool.allocate(6); // 2 free + 4 evicted from prompt 3
    assertEquals(0, pool.freeBlocks());
    assertThrows(
        KvPoolExhaustedException.class,
        () -> pool.allocate(1),
        "pinned blocks must never be evicted");
    pool.free(live);
    cache.release(pinned);
    assertEquals(4, cache.stats().cachedBlocks());
    assertEquals(4, cache.stats().evictedBlocks());

    // The chain's tail goes first: after evicting one block, the first three still match.
    int[] two = pool.allocate(7);
    assertEquals(3, cache.stats().cachedBlocks());
    PrefixCache.Match m = cache.acquire(hasher.hashes(p2), p2, 4);
    assertEquals(3, m.length(), "eviction must take a prefix's last block before its first");
    cache.release(m);
    pool.free(two);
  }

  @Test
  void aBlockWithTheSameHashButOtherTokensIsNotAHit() {
    int[] p = prompt(8, 4);
    long[] hashes = hasher.hashes(p);
    serve(p);
    int[] other = prompt(8, 5);
    PrefixCache.Match m =
        cache.acquire(hashes, other, 2); // a forged collision: p's hashes, other tokens
    assertEquals(0, m.length());
  }

  @Test
  void aSharedPrefixIsNeverFreedByItsSequence() {
    int[] p = prompt(9, 6);
    serve(p);
    long[] hashes = hasher.hashes(p);
    PrefixCache.Match m = cache.acquire(hashes, p, 2);
    PagedSequenceKv kv = PagedSequenceKv.withSharedPrefix(pool, m.blocks(), pool.allocate(1));
    assertEquals(2, kv.sharedBlocks());
    kv.release(); // a failed request: frees its own block only
    assertTrue(
        pool.isAllocated(m.blocks()[0]) && pool.isAllocated(m.blocks()[1]),
        "shared blocks stay with the cache");
    cache.release(m);
  }

  @Test
  void aBlockWhoseImageKeyDiffersIsNotSharedEvenUnderTheSameHash() {
    int[] prompt = prompt(9, 0); // 2 full blocks
    long[] hashes = hasher.hashes(prompt);
    byte[] imageOne = new byte[40];
    byte[] imageTwo = new byte[40];
    imageTwo[0] = 1;
    PrefixHasher.Blocks one = new PrefixHasher.Blocks(hashes, new byte[][] {imageOne, null});
    PrefixHasher.Blocks two = new PrefixHasher.Blocks(hashes, new byte[][] {imageTwo, null});
    PrefixCache.Match m = cache.acquire(one, prompt, 2);
    PagedSequenceKv kv =
        PagedSequenceKv.withReservation(pool, pool.allocate(layout.blocksFor(prompt.length)));
    cache.commit(m, one, prompt, kv.detach());
    assertEquals(2, cache.stats().cachedBlocks());

    PrefixCache.Match collision = cache.acquire(two, prompt, 2);
    assertEquals(0, collision.length(), "another image's KV is never handed out");
    PrefixCache.Match same = cache.acquire(one, prompt, 2);
    assertEquals(2, same.length(), "the same image's blocks are");
    cache.release(same);
    assertEquals(
        0,
        cache.acquire(hashes, prompt, 2).length(),
        "nor the image blocks to a text prompt with the same hash");
  }
}
