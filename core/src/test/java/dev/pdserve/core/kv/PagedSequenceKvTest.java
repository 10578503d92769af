package dev.pdserve.core.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.engine.ContiguousKv;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class PagedSequenceKvTest {
  private final ModelConfig cfg = ModelPresets.get("tiny");
  private BufferAllocator root;

  @BeforeEach
  void setUp() {
    root = new RootAllocator();
  }

  @AfterEach
  void tearDown() {
    assertEquals(
        0, root.getAllocatedMemory(), "Arrow memory still allocated at the end of the test");
    root.close();
  }

  /**
   * Drives both caches through the engine's call pattern (per step: read the past of every layer,
   * write the new positions, advance) with random step sizes, and compares every read.
   */
  @ParameterizedTest
  @ValueSource(ints = {1, 3, 16})
  void pagedCacheReadsExactlyWhatContiguousCacheReads(int blockSize) {
    KvLayout layout = KvLayout.of(cfg, blockSize);
    try (KvBlockPool pool = new KvBlockPool(root, layout, 200L * layout.blockBytes())) {
      PagedSequenceKv paged = new PagedSequenceKv(pool);
      ContiguousKv plain = new ContiguousKv(cfg, 1);
      Random r = new Random(blockSize);
      int kvh = cfg.numKvHeads();
      int hd = cfg.headDim();
      for (int step = 0; step < 12; step++) {
        int count = step == 0 ? 37 : 1 + r.nextInt(blockSize + 3);
        int tq = count + r.nextInt(3); // padded rows the engine does not store
        int stride = paged.length() + tq;
        for (int l = 0; l < cfg.numLayers(); l++) {
          int offset = r.nextInt(5) * hd;
          float[] pk = new float[offset + kvh * stride * hd];
          float[] pv = new float[pk.length];
          float[] ck = new float[pk.length];
          float[] cv = new float[pk.length];
          paged.read(l, pk, pv, offset, stride);
          plain.read(l, ck, cv, offset, stride);
          assertArrayEquals(ck, pk, "K of layer " + l + " differs at step " + step);
          assertArrayEquals(cv, pv, "V of layer " + l + " differs at step " + step);
          int woff = r.nextInt(3) * hd;
          float[] k = new float[woff + kvh * tq * hd];
          float[] v = new float[k.length];
          for (int i = 0; i < k.length; i++) {
            k[i] = r.nextFloat();
            v[i] = r.nextFloat();
          }
          paged.write(l, k, v, woff, tq, count);
          plain.write(l, k, v, woff, tq, count);
        }
        paged.advance(count);
        plain.advance(count);
        assertEquals(plain.length(), paged.length());
      }
      assertEquals(
          layout.blocksFor(paged.length()), pool.usedBlocks(), "blocks are taken on demand only");
      paged.release();
      assertEquals(pool.totalBlocks(), pool.freeBlocks(), "released blocks did not all return");
    }
  }

  @Test
  void listenerIsToldEachLayerAfterItsWrite() {
    KvLayout layout = KvLayout.of(cfg, 4);
    try (KvBlockPool pool = new KvBlockPool(root, layout, 10L * layout.blockBytes())) {
      PagedSequenceKv kv = new PagedSequenceKv(pool);
      List<String> seen = new ArrayList<>();
      kv.setLayerWrittenListener(
          (layer, first, count) -> {
            // the layer's positions are readable from the pool by now
            seen.add(layer + ":" + first + "+" + count);
          });
      float[] k = new float[cfg.numKvHeads() * 5 * cfg.headDim()];
      for (int step = 0; step < 2; step++) {
        for (int l = 0; l < cfg.numLayers(); l++) {
          kv.write(l, k, k, 0, 5, 5);
        }
        kv.advance(5);
      }
      assertEquals(
          List.of("0:0+5", "1:0+5", "2:0+5", "3:0+5", "0:5+5", "1:5+5", "2:5+5", "3:5+5"), seen);
      kv.release();
    }
  }

  @Test
  void reservationIsUsedFirstAndReleaseFreesExactlyOnce() {
    KvLayout layout = KvLayout.of(cfg, 4);
    try (KvBlockPool pool = new KvBlockPool(root, layout, 10L * layout.blockBytes())) {
      int[] reserved = pool.allocate(2);
      PagedSequenceKv kv = PagedSequenceKv.withReservation(pool, reserved);
      assertEquals(8, kv.capacity());
      assertArrayEquals(reserved, kv.blockTable());
      float[] k = new float[cfg.numKvHeads() * 10 * cfg.headDim()];
      kv.write(0, k, k, 0, 10, 10); // outgrows the reservation by one block
      assertEquals(3, kv.blockTable().length);
      assertEquals(reserved[0], kv.block(0));
      assertEquals(7, pool.freeBlocks());
      kv.release();
      kv.release();
      assertEquals(10, pool.freeBlocks());
      assertThrows(IllegalStateException.class, () -> kv.write(0, k, k, 0, 10, 1));
    }
  }

  @Test
  void growthBeyondThePoolFailsWithExhaustion() {
    KvLayout layout = KvLayout.of(cfg, 4);
    try (KvBlockPool pool = new KvBlockPool(root, layout, 2L * layout.blockBytes())) {
      PagedSequenceKv kv = new PagedSequenceKv(pool);
      float[] k = new float[cfg.numKvHeads() * 9 * cfg.headDim()];
      var e = assertThrows(KvPoolExhaustedException.class, () -> kv.write(0, k, k, 0, 9, 9));
      assertEquals(3, e.needed());
      assertEquals(0, kv.length());
      kv.release();
      assertEquals(2, pool.freeBlocks());
    }
  }

  @Test
  void adoptedBlocksReadBackTheirContents() {
    KvLayout layout = KvLayout.of(cfg, 4);
    try (KvBlockPool pool = new KvBlockPool(root, layout, 10L * layout.blockBytes())) {
      PagedSequenceKv writer = new PagedSequenceKv(pool);
      ContiguousKv plain = new ContiguousKv(cfg, 8);
      int n = 7;
      float[] k = new float[cfg.numKvHeads() * n * cfg.headDim()];
      for (int i = 0; i < k.length; i++) {
        k[i] = i * 0.5f;
      }
      for (int l = 0; l < cfg.numLayers(); l++) {
        writer.write(l, k, k, 0, n, n);
        plain.write(l, k, k, 0, n, n);
      }
      writer.advance(n);
      plain.advance(n);
      int[] table = writer.blockTable();
      PagedSequenceKv adopted = PagedSequenceKv.adopt(pool, table, n);
      float[] a = new float[cfg.numKvHeads() * n * cfg.headDim()];
      float[] b = new float[a.length];
      adopted.read(2, a, a, 0, n);
      plain.read(2, b, b, 0, n);
      assertArrayEquals(b, a);
      assertThrows(
          IllegalArgumentException.class,
          () -> PagedSequenceKv.adopt(pool, new int[] {table[0]}, n));
      adopted.release(); // the adopter owns the blocks now
      assertEquals(10, pool.freeBlocks());
      assertTrue(adopted.isReleased());
    }
  }
}
