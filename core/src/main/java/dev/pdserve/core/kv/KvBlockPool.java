package dev.pdserve.core.kv;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;

/**
 * A paged KV cache with a fixed byte budget: {@code budget / blockBytes} blocks of {@link
 * KvLayout}, held in off-heap Arrow memory from a named child of the given allocator (so Arrow
 * Flight can copy received batches straight into a block). Blocks are handed out by id, all or
 * nothing, and must be freed exactly once.
 *
 * <p>{@link #allocate}, {@link #free} and the counters are thread-safe. The copy helpers do not
 * lock: the caller owns the blocks it copies into or out of, and distinct blocks never overlap.
 * Element data is little-endian (the byte order of Arrow's wire format) in the layout's {@link
 * KvLayout#dtype() dtype}: {@link #write} narrows fp32 to it and {@link #read} widens it back; the
 * layer copies move the stored bytes as they are.
 */
public final class KvBlockPool implements AutoCloseable {
  /** Largest single Arrow buffer the pool allocates; blocks never straddle two buffers. */
  static final long MAX_CHUNK_BYTES = 1L << 30;

  private final KvLayout layout;
  private final BufferAllocator allocator;
  private final int totalBlocks;
  private final int blocksPerChunk;
  private final ArrowBuf[] chunks;
  private final KvElements[] elements; // one absolute-indexed view per chunk; never moved
  private final int[] freeStack;
  private final BitSet allocated;
  private int freeCount;
  private volatile boolean closed;

  /** A pool named {@code kv-block-pool} under {@code parent}. */
  public KvBlockPool(BufferAllocator parent, KvLayout layout, long budgetBytes) {
    this(parent, "kv-block-pool", layout, budgetBytes);
  }

  /**
   * Allocates {@code floor(budgetBytes / layout.blockBytes())} blocks from a child of {@code
   * parent} called {@code name}.
   *
   * @throws IllegalArgumentException if the budget is below one block
   */
  public KvBlockPool(BufferAllocator parent, String name, KvLayout layout, long budgetBytes) {
    this.layout = layout;
    long blockBytes = layout.blockBytes();
    if (budgetBytes < blockBytes) {
      throw new IllegalArgumentException(
          "KV pool budget of "
              + budgetBytes
              + " bytes is below one block ("
              + blockBytes
              + " bytes = "
              + layout.blockSize()
              + " tokens × "
              + layout.bytesPerToken()
              + " bytes/token)");
    }
    long blocks = budgetBytes / blockBytes;
    if (blocks > Integer.MAX_VALUE) {
      throw new IllegalArgumentException(
          "KV pool budget of "
              + budgetBytes
              + " bytes is more than "
              + Integer.MAX_VALUE
              + " blocks");
    }
    this.totalBlocks = (int) blocks;
    this.blocksPerChunk = (int) Math.max(1, Math.min(totalBlocks, MAX_CHUNK_BYTES / blockBytes));
    int chunkCount = (totalBlocks + blocksPerChunk - 1) / blocksPerChunk;
    long limit = 0; // what the chunks really take, after the allocator's size rounding
    for (int c = 0; c < chunkCount; c++) {
      limit +=
          parent
              .getRoundingPolicy()
              .getRoundedSize(
                  Math.min(blocksPerChunk, totalBlocks - c * blocksPerChunk) * blockBytes);
    }
    this.allocator = parent.newChildAllocator(name, 0, limit);
    this.chunks = new ArrowBuf[chunkCount];
    this.elements = new KvElements[chunkCount];
    List<ArrowBuf> made = new ArrayList<>();
    try {
      for (int c = 0; c < chunkCount; c++) {
        int n = Math.min(blocksPerChunk, totalBlocks - c * blocksPerChunk);
        ArrowBuf buf = allocator.buffer(n * blockBytes);
        made.add(buf);
        chunks[c] = buf;
        elements[c] = KvElements.over(buf.nioBuffer(0, (int) (n * blockBytes)), layout.dtype());
      }
    } catch (RuntimeException e) {
      made.forEach(ArrowBuf::close);
      allocator.close();
      throw e;
    }
    this.freeStack = new int[totalBlocks];
    for (int i = 0; i < totalBlocks; i++) {
      freeStack[i] = totalBlocks - 1 - i; // hand out low ids first
    }
    this.freeCount = totalBlocks;
    this.allocated = new BitSet(totalBlocks);
  }

  public KvLayout layout() {
    return layout;
  }

  public int totalBlocks() {
    return totalBlocks;
  }

  public synchronized int freeBlocks() {
    return freeCount;
  }

  public synchronized int usedBlocks() {
    return totalBlocks - freeCount;
  }

  /**
   * Something that holds blocks it can give back when the pool runs short: a prefix cache. Its
   * blocks count as {@link #reclaimableBlocks() reclaimable}, not as leaked.
   */
  public interface Reclaimer {
    /**
     * Frees (with {@link KvBlockPool#free}) up to {@code blocks} blocks it holds and no live
     * sequence uses; returns how many it freed. Called without the pool's lock held.
     */
    int reclaim(int blocks);

    /** Blocks it holds that {@link #reclaim} could free now. */
    int reclaimable();

    /** Every block it holds, reclaimable or in use by a live sequence. */
    int held();
  }

  private volatile Reclaimer reclaimer;

  /** Sets the holder {@link #allocate} asks for blocks when too few are free (null: none). */
  public void setReclaimer(Reclaimer reclaimer) {
    this.reclaimer = reclaimer;
  }

  /** Blocks held by the {@link Reclaimer} (a prefix cache) that it could give back now. */
  public int reclaimableBlocks() {
    Reclaimer r = reclaimer;
    return r == null ? 0 : r.reclaimable();
  }

  /** Blocks held by the {@link Reclaimer} (a prefix cache), whether in use or not. */
  public int cachedBlocks() {
    Reclaimer r = reclaimer;
    return r == null ? 0 : r.held();
  }

  /** Free blocks plus those a cache would give back: what {@link #allocate} can hand out. */
  public int availableBlocks() {
    return freeBlocks() + reclaimableBlocks();
  }

  /**
   * Takes {@code blocks} free blocks, all or nothing. When too few are free, the {@link Reclaimer}
   * (if any) is asked to give cached blocks back first.
   *
   * @throws KvPoolExhaustedException if fewer than {@code blocks} are free
   */
  public int[] allocate(int blocks) {
    int shortage;
    synchronized (this) {
      ensureOpen();
      if (blocks < 0) {
        throw new IllegalArgumentException("cannot allocate " + blocks + " blocks");
      }
      if (blocks <= freeCount) {
        return take(blocks);
      }
      shortage = blocks - freeCount;
    }
    Reclaimer r = reclaimer;
    if (r != null && blocks <= totalBlocks) {
      r.reclaim(shortage); // outside our lock: the cache frees into us under its own lock
    }
    synchronized (this) {
      ensureOpen();
      if (blocks > freeCount) {
        throw new KvPoolExhaustedException(blocks, freeCount, totalBlocks);
      }
      return take(blocks);
    }
  }

  private int[] take(int blocks) {
    int[] out = new int[blocks];
    for (int i = 0; i < blocks; i++) {
      int id = freeStack[--freeCount];
      allocated.set(id);
      out[i] = id;
    }
    return out;
  }

  /**
   * Returns {@code blocks} to the pool. The whole call is checked before anything is freed: an id
   * that is not a block of this pool, or not allocated (a double free), or listed twice, fails it.
   */
  public synchronized void free(int[] blocks) {
    ensureOpen();
    BitSet seen = new BitSet();
    for (int id : blocks) {
      if (id < 0 || id >= totalBlocks) {
        throw new IllegalArgumentException(
            "block " + id + " does not belong to this pool (0.." + (totalBlocks - 1) + ")");
      }
      if (!allocated.get(id) || seen.get(id)) {
        throw new IllegalStateException("block " + id + " is already free (double free)");
      }
      seen.set(id);
    }
    for (int id : blocks) {
      allocated.clear(id);
      freeStack[freeCount++] = id;
    }
  }

  /** Whether {@code block} is currently allocated. */
  public synchronized boolean isAllocated(int block) {
    return block >= 0 && block < totalBlocks && allocated.get(block);
  }

  /**
   * Copies {@code count} positions into {@code block}'s {@code layer} from slot {@code slot},
   * narrowed to the layout's dtype. The sources are laid out {@code [kvHeads][stride][headDim]}:
   * position {@code i} of head {@code h} starts at float {@code offset + (h·stride + i)·headDim}.
   */
  public void write(
      int block, int layer, int slot, int count, float[] k, float[] v, int offset, int stride) {
    checkRange(block, layer, slot, count);
    KvElements chunk = elements[block / blocksPerChunk];
    int base = layerElementIndex(block, layer) + slot * layout.headDim();
    int hd = layout.headDim();
    int n = count * hd;
    int half = layout.halfElements();
    for (int h = 0; h < layout.kvHeads(); h++) {
      int dst = base + h * layout.headElements();
      int src = offset + h * stride * hd;
      chunk.put(dst, k, src, n);
      chunk.put(dst + half, v, src, n);
    }
  }

  /**
   * The inverse of {@link #write}: copies {@code count} positions out of {@code block}'s {@code
   * layer}, widened to fp32.
   */
  public void read(
      int block, int layer, int slot, int count, float[] k, float[] v, int offset, int stride) {
    checkRange(block, layer, slot, count);
    KvElements chunk = elements[block / blocksPerChunk];
    int base = layerElementIndex(block, layer) + slot * layout.headDim();
    int hd = layout.headDim();
    int n = count * hd;
    int half = layout.halfElements();
    for (int h = 0; h < layout.kvHeads(); h++) {
      int src = base + h * layout.headElements();
      int dst = offset + h * stride * hd;
      chunk.get(src, k, dst, n);
      chunk.get(src + half, v, dst, n);
    }
  }

  /**
   * Copies one layer of one block ({@link KvLayout#layerBytes()} bytes, laid out {@code [K then
   * V][kvHead][slot][headDim]}) from {@code src} at {@code srcIndex}: one memcpy.
   */
  public void copyLayerIn(int block, int layer, ArrowBuf src, long srcIndex) {
    checkRange(block, layer, 0, 0);
    chunks[block / blocksPerChunk].setBytes(
        layerByteIndex(block, layer), src, srcIndex, layout.layerBytes());
  }

  /**
   * Copies {@code src.remaining()} bytes into one layer of one block, from byte {@code offset} of
   * the layer's {@link KvLayout#layerBytes()}, advancing {@code src}. For receivers that hold a row
   * in several transport buffers.
   */
  public void writeLayerBytes(int block, int layer, int offset, ByteBuffer src) {
    checkRange(block, layer, 0, 0);
    if (offset < 0 || offset + (long) src.remaining() > layout.layerBytes()) {
      throw new IndexOutOfBoundsException(
          "bytes "
              + offset
              + ".."
              + (offset + (long) src.remaining())
              + " are outside a layer of "
              + layout.layerBytes());
    }
    chunks[block / blocksPerChunk].setBytes(layerByteIndex(block, layer) + offset, src);
  }

  /** Copies one layer of one block out to {@code dst} at {@code dstIndex}: one memcpy. */
  public void copyLayerOut(int block, int layer, ArrowBuf dst, long dstIndex) {
    checkRange(block, layer, 0, 0);
    dst.setBytes(
        dstIndex,
        chunks[block / blocksPerChunk],
        layerByteIndex(block, layer),
        layout.layerBytes());
  }

  /**
   * A view of one layer of one block ({@link KvLayout#layerBytes()} bytes) that holds a reference
   * on the pool's memory until closed: for senders that hand the bytes to the network without
   * copying them. The view does not pin the block's contents; its owner must not free or rewrite
   * the block until the bytes are sent.
   */
  public ArrowBuf retainLayer(int block, int layer) {
    checkRange(block, layer, 0, 0);
    ArrowBuf chunk = chunks[block / blocksPerChunk];
    chunk.getReferenceManager().retain();
    return chunk.slice(layerByteIndex(block, layer), layout.layerBytes());
  }

  /** Frees the pool's memory. Blocks still allocated are lost with it; close after their owners. */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    for (ArrowBuf c : chunks) {
      c.close();
    }
    allocator.close();
  }

  private long layerByteIndex(int block, int layer) {
    return (long) (block % blocksPerChunk) * layout.blockBytes() + layout.layerOffset(layer);
  }

  private int layerElementIndex(int block, int layer) {
    return (int) (layerByteIndex(block, layer) / layout.elementBytes());
  }

  private void checkRange(int block, int layer, int slot, int count) {
    if (closed) {
      throw new IllegalStateException("KV pool is closed");
    }
    if (block < 0 || block >= totalBlocks) {
      throw new IndexOutOfBoundsException("block " + block + " is outside 0.." + (totalBlocks - 1));
    }
    if (layer < 0 || layer >= layout.layers()) {
      throw new IndexOutOfBoundsException(
          "layer " + layer + " is outside 0.." + (layout.layers() - 1));
    }
    if (slot < 0 || count < 0 || slot + count > layout.blockSize()) {
      throw new IndexOutOfBoundsException(
          "slots "
              + slot
              + ".."
              + (slot + count)
              + " are outside a block of "
              + layout.blockSize());
    }
  }

  private void ensureOpen() {
    if (closed) {
      throw new IllegalStateException("KV pool is closed");
    }
  }
}
