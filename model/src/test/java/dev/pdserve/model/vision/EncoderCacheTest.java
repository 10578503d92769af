package dev.pdserve.model.vision;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** The encoder cache: by digest, bounded by bytes, least recently used out first, counted. */
class EncoderCacheTest {
  static ImageDigest digest(int seed) {
    byte[] d = new byte[ImageDigest.LENGTH];
    Arrays.fill(d, (byte) seed);
    return new ImageDigest(d);
  }

  /** Rows costing exactly {@code bytes} in the cache (floats plus the entry overhead). */
  static float[] rows(long bytes) {
    return new float[(int) ((bytes - EncoderCache.ENTRY_OVERHEAD_BYTES) / 4)];
  }

  @Test
  void aHitReturnsTheRowsAndHitsAndMissesAreCounted() {
    EncoderCache cache = new EncoderCache(10_000);
    assertNull(cache.get(digest(1)));
    float[] r = rows(1_000);
    cache.put(digest(1), r);
    assertSame(r, cache.get(digest(1)));
    assertEquals(1, cache.hits());
    assertEquals(1, cache.misses());
    assertEquals(1_000, cache.bytes());
  }

  @Test
  void theLeastRecentlyUsedGoesFirstWhenTheBytesRunOut() {
    EncoderCache cache = new EncoderCache(3_000);
    cache.put(digest(1), rows(1_000));
    cache.put(digest(2), rows(1_000));
    cache.put(digest(3), rows(1_000));
    cache.get(digest(1)); // 2 is now the least recently used
    cache.put(digest(4), rows(1_000));
    assertNull(cache.get(digest(2)), "the least recently used was evicted");
    assertEquals(3, cache.entries());
    assertEquals(3_000, cache.bytes());
    assertEquals(1, cache.evictions());
    cache.put(digest(5), rows(2_500)); // takes the room of all the others
    assertEquals(1, cache.entries());
    assertEquals(2_500, cache.bytes());
  }

  @Test
  void rowsLargerThanTheCacheAndACacheOfZeroKeepNothing() {
    EncoderCache cache = new EncoderCache(1_000);
    cache.put(digest(1), rows(1_004));
    assertNull(cache.get(digest(1)));
    EncoderCache none = new EncoderCache(0);
    none.put(digest(1), new float[0]);
    assertNull(none.get(digest(1)));
    assertEquals(0, none.bytes());
  }
}
