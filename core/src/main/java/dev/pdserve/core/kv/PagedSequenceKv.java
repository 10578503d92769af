package dev.pdserve.core.kv;

import dev.pdserve.model.engine.SequenceKv;
import java.util.Arrays;

/**
 * One sequence's KV cache as a block table over a {@link KvBlockPool}. Blocks come from a
 * reservation handed over at construction, then from the pool as the sequence grows; {@link
 * #release()} gives every block back exactly once. Used by one engine thread at a time.
 */
public final class PagedSequenceKv implements SequenceKv, AutoCloseable {
  private static final LayerWrittenListener NONE = (layer, first, count) -> {};

  private final KvBlockPool pool;
  private final KvLayout layout;
  private int[] table;
  private int blocks;
  private int
      borrowed; // leading blocks shared from a prefix cache: read, never written or freed here
  private int length;
  private boolean released;
  private LayerWrittenListener listener = NONE;

  private PagedSequenceKv(KvBlockPool pool, int[] owned, int length) {
    this.pool = pool;
    this.layout = pool.layout();
    this.table = Arrays.copyOf(owned, Math.max(4, owned.length));
    this.blocks = owned.length;
    this.length = length;
  }

  /** An empty sequence that takes blocks from {@code pool} as it grows. */
  public PagedSequenceKv(KvBlockPool pool) {
    this(pool, new int[0], 0);
  }

  /**
   * An empty sequence that first fills {@code reserved} (blocks already allocated from {@code
   * pool}, now owned by this sequence), then takes more from the pool if it outgrows them.
   */
  public static PagedSequenceKv withReservation(KvBlockPool pool, int[] reserved) {
    return new PagedSequenceKv(pool, reserved.clone(), 0);
  }

  /**
   * A sequence that starts with {@code shared} — full blocks of a cached prompt prefix, owned by a
   * {@link PrefixCache} and pinned by the caller — holding {@code shared.length × blockSize}
   * positions, then fills {@code reserved} (owned by this sequence) and takes more from the pool if
   * it outgrows them. {@link #release()} frees only the blocks this sequence owns; the shared ones
   * are never written (positions start after them) nor freed here.
   */
  public static PagedSequenceKv withSharedPrefix(KvBlockPool pool, int[] shared, int[] reserved) {
    int[] all = Arrays.copyOf(shared, shared.length + reserved.length);
    System.arraycopy(reserved, 0, all, shared.length, reserved.length);
    PagedSequenceKv kv = new PagedSequenceKv(pool, all, shared.length * pool.layout().blockSize());
    kv.borrowed = shared.length;
    return kv;
  }

  /** Leading blocks shared from a prefix cache (not owned, never freed by this sequence). */
  public int sharedBlocks() {
    return borrowed;
  }

  /**
   * Ends the sequence without freeing anything and returns its whole block table: the caller now
   * owns the blocks this sequence owned (e.g. to hand full prompt blocks to a prefix cache).
   */
  public int[] detach() {
    ensureLive();
    released = true;
    int[] all = Arrays.copyOf(table, blocks);
    blocks = 0;
    length = 0;
    return all;
  }

  /**
   * Takes over {@code blocks} (allocated from {@code pool}) that already hold {@code length}
   * positions of every layer, e.g. KV that arrived over Flight. The sequence owns them from now on.
   */
  public static PagedSequenceKv adopt(KvBlockPool pool, int[] blocks, int length) {
    int needed = pool.layout().blocksFor(length);
    if (length < 0 || blocks.length < needed) {
      throw new IllegalArgumentException(
          length + " positions need " + needed + " blocks, got " + blocks.length);
    }
    return new PagedSequenceKv(pool, blocks.clone(), length);
  }

  /** Sets the hook told after each {@code write}; null removes it. */
  public void setLayerWrittenListener(LayerWrittenListener listener) {
    this.listener = listener == null ? NONE : listener;
  }

  public KvBlockPool pool() {
    return pool;
  }

  @Override
  public int length() {
    return length;
  }

  /** Positions the blocks held now can store. */
  public int capacity() {
    return blocks * layout.blockSize();
  }

  /**
   * The block table: the pool id of the block holding positions {@code [i·blockSize,
   * (i+1)·blockSize)}.
   */
  public int[] blockTable() {
    return Arrays.copyOf(table, blocks);
  }

  /** Pool id of the {@code index}-th block of the sequence. */
  public int block(int index) {
    if (index < 0 || index >= blocks) {
      throw new IndexOutOfBoundsException("block " + index + " of a sequence holding " + blocks);
    }
    return table[index];
  }

  @Override
  public void read(int layer, float[] k, float[] v, int offset, int stride) {
    ensureLive();
    if (length > stride) {
      throw new IllegalArgumentException(
          "stride " + stride + " is shorter than the " + length + " stored positions");
    }
    int bs = layout.blockSize();
    int hd = layout.headDim();
    for (int p = 0; p < length; ) {
      int slot = p % bs;
      int run = Math.min(bs - slot, length - p);
      pool.read(table[p / bs], layer, slot, run, k, v, offset + p * hd, stride);
      p += run;
    }
  }

  @Override
  public void write(int layer, float[] k, float[] v, int offset, int tq, int count) {
    ensureLive();
    if (count < 0 || count > tq) {
      throw new IllegalArgumentException("count " + count + " must be in [0, tq=" + tq + "]");
    }
    ensureCapacity(length + count);
    int bs = layout.blockSize();
    int hd = layout.headDim();
    for (int i = 0; i < count; ) {
      int p = length + i;
      int slot = p % bs;
      int run = Math.min(bs - slot, count - i);
      pool.write(table[p / bs], layer, slot, run, k, v, offset + i * hd, tq);
      i += run;
    }
    listener.layerWritten(layer, length, count);
  }

  @Override
  public void advance(int count) {
    ensureLive();
    if (count < 0 || length + count > capacity()) {
      throw new IllegalArgumentException(
          "cannot advance " + length + " positions by " + count + ": blocks hold " + capacity());
    }
    length += count;
  }

  /**
   * Makes room for {@code positions} positions, taking blocks from the pool if needed (all or
   * nothing).
   *
   * @throws KvPoolExhaustedException if the pool cannot supply them
   */
  public void ensureCapacity(int positions) {
    ensureLive();
    int need = layout.blocksFor(positions) - blocks;
    if (need <= 0) {
      return;
    }
    int[] more = pool.allocate(need);
    if (blocks + need > table.length) {
      table = Arrays.copyOf(table, Math.max(blocks + need, table.length * 2));
    }
    System.arraycopy(more, 0, table, blocks, need);
    blocks += need;
  }

  /**
   * Returns every block this sequence owns to the pool (shared prefix blocks stay with their
   * cache). Only the first call frees; later calls do nothing.
   */
  public void release() {
    if (released) {
      return;
    }
    released = true;
    int[] owned = Arrays.copyOfRange(table, borrowed, blocks);
    blocks = 0;
    length = 0;
    pool.free(owned);
  }

  /** Whether {@link #release()} has run. */
  public boolean isReleased() {
    return released;
  }

  @Override
  public void close() {
    release();
  }

  private void ensureLive() {
    if (released) {
      throw new IllegalStateException("KV of this sequence was released");
    }
  }
}
