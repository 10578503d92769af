package dev.pdserve.model.vision;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Images' language-model rows by {@link ImageDigest}, least recently used evicted first once the
 * rows held pass a byte bound, so an image sent again (the same picture in a conversation's next
 * turn, or by many clients) skips the vision encoder. Counts hits and misses. The rows handed out
 * are shared: callers only read them. Thread-safe.
 */
public final class EncoderCache {
  /** What one entry costs besides its floats (map entry, key, array header), roughly. */
  static final long ENTRY_OVERHEAD_BYTES = 128;

  private final long capacityBytes;
  private final LinkedHashMap<ImageDigest, float[]> entries = new LinkedHashMap<>(64, 0.75f, true);
  private long bytes;
  private long hits;
  private long misses;
  private long evictions;

  /**
   * @param capacityBytes the most bytes of rows held; 0 keeps nothing (every lookup misses)
   */
  public EncoderCache(long capacityBytes) {
    if (capacityBytes < 0) {
      throw new IllegalArgumentException(
          "encoder cache capacity must be >= 0 bytes, got " + capacityBytes);
    }
    this.capacityBytes = capacityBytes;
  }

  /** The rows of the image with digest {@code digest}, or null; counts a hit or a miss. */
  public synchronized float[] get(ImageDigest digest) {
    float[] rows = entries.get(digest);
    if (rows == null) {
      misses++;
    } else {
      hits++;
    }
    return rows;
  }

  /**
   * Keeps {@code rows} (which nobody may change afterwards) for {@code digest}, evicting the least
   * recently used entries to make room; rows larger than the whole capacity are not kept.
   */
  public synchronized void put(ImageDigest digest, float[] rows) {
    long size = sizeOf(rows);
    if (size > capacityBytes) {
      return;
    }
    float[] old = entries.put(digest, rows);
    if (old != null) {
      bytes -= sizeOf(old);
    }
    bytes += size;
    for (Iterator<Map.Entry<ImageDigest, float[]>> it = entries.entrySet().iterator();
        bytes > capacityBytes && it.hasNext(); ) {
      Map.Entry<ImageDigest, float[]> e = it.next();
      if (e.getKey().equals(digest)) {
        continue;
      }
      bytes -= sizeOf(e.getValue());
      it.remove();
      evictions++;
    }
  }

  private static long sizeOf(float[] rows) {
    return 4L * rows.length + ENTRY_OVERHEAD_BYTES;
  }

  public long capacityBytes() {
    return capacityBytes;
  }

  /** Bytes held now (rows and per-entry overhead). */
  public synchronized long bytes() {
    return bytes;
  }

  public synchronized int entries() {
    return entries.size();
  }

  /** Lookups that found the image. */
  public synchronized long hits() {
    return hits;
  }

  /** Lookups that did not. */
  public synchronized long misses() {
    return misses;
  }

  public synchronized long evictions() {
    return evictions;
  }
}
