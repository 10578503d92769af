package dev.pdserve.core.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.config.ModelPresets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class KvBlockPoolTest {
  private final KvLayout layout = new KvLayout(4, 3, 2, 8, KvDtype.FP32);
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

  @Test
  void layoutSizesFollowTheModelConfig() {
    KvLayout ernie = KvLayout.of(ModelPresets.get("ernie-4.5-vl-28b-a3b"));
    assertEquals(16, ernie.blockSize());
    // 2 × 28 layers × 4 KV heads × 128 × 4 bytes
    assertEquals(114_688, ernie.bytesPerToken());
    assertEquals(2 * 4 * 16 * 128 * 4, ernie.layerBytes());
    assertEquals(28 * ernie.layerBytes(), ernie.blockBytes());
    assertEquals(3, ernie.blocksFor(33));
    assertEquals(0, ernie.blocksFor(0));
  }

  @Test
  void budgetFixesTheNumberOfBlocks() {
    try (KvBlockPool pool = new KvBlockPool(root, layout, 10L * layout.blockBytes() + 7)) {
      assertEquals(10, pool.totalBlocks());
      assertEquals(10, pool.freeBlocks());
      assertEquals(0, pool.usedBlocks());
    }
  }

  @Test
  void budgetBelowOneBlockIsRejectedWithTheBlockSize() {
    var e =
        assertThrows(
            IllegalArgumentException.class,
            () -> new KvBlockPool(root, layout, layout.blockBytes() - 1));
    assertTrue(
        e.getMessage().contains("below one block (" + layout.blockBytes() + " bytes"),
        e.getMessage());
  }

  @Test
  void allocationIsAllOrNothing() {
    try (KvBlockPool pool = new KvBlockPool(root, layout, 5L * layout.blockBytes())) {
      int[] a = pool.allocate(3);
      assertEquals(3, Set.of(a[0], a[1], a[2]).size());
      var e = assertThrows(KvPoolExhaustedException.class, () -> pool.allocate(3));
      assertEquals(3, e.needed());
      assertEquals(2, e.free());
      assertTrue(e.getMessage().contains("needed 3 blocks, 2 of 5 free"), e.getMessage());
      assertEquals(2, pool.freeBlocks(), "a failed allocation took blocks");
      int[] b = pool.allocate(2);
      pool.free(a);
      pool.free(b);
      assertEquals(5, pool.freeBlocks());
    }
  }

  @Test
  void doubleFreeAndForeignIdsAreErrorsThatFreeNothing() {
    try (KvBlockPool pool = new KvBlockPool(root, layout, 4L * layout.blockBytes())) {
      int[] a = pool.allocate(2);
      assertThrows(IllegalArgumentException.class, () -> pool.free(new int[] {a[0], 99}));
      assertThrows(IllegalArgumentException.class, () -> pool.free(new int[] {-1}));
      assertThrows(IllegalStateException.class, () -> pool.free(new int[] {a[0], a[0]}));
      assertEquals(2, pool.freeBlocks(), "a rejected free released blocks");
      pool.free(a);
      var e = assertThrows(IllegalStateException.class, () -> pool.free(new int[] {a[1]}));
      assertTrue(e.getMessage().contains("double free"), e.getMessage());
      assertEquals(4, pool.freeBlocks());
    }
  }

  @Test
  void floatCopiesRoundTripAndLayersAreContiguousPerBlock() {
    try (KvBlockPool pool = new KvBlockPool(root, layout, 3L * layout.blockBytes());
        ArrowBuf out = root.buffer(layout.layerBytes())) {
      int[] blocks = pool.allocate(2);
      int hd = layout.headDim();
      int stride = 6; // source positions per head
      float[] k = new float[layout.kvHeads() * stride * hd];
      float[] v = new float[k.length];
      for (int i = 0; i < k.length; i++) {
        k[i] = i;
        v[i] = -i;
      }
      // positions 1..3 of the source into slots 1..3 of layer 2
      pool.write(blocks[1], 2, 1, 3, k, v, hd, stride);
      float[] k2 = new float[k.length];
      float[] v2 = new float[k.length];
      pool.read(blocks[1], 2, 1, 3, k2, v2, hd, stride);
      for (int h = 0; h < layout.kvHeads(); h++) {
        for (int p = 1; p < 4; p++) {
          for (int d = 0; d < hd; d++) {
            int i = (h * stride + p) * hd + d;
            assertEquals(k[i], k2[i]);
            assertEquals(v[i], v2[i]);
          }
        }
      }
      // The raw layer bytes are [K then V][head][slot][headDim].
      pool.copyLayerOut(blocks[1], 2, out, 0);
      int bs = layout.blockSize();
      int half = layout.halfElements();
      for (int h = 0; h < layout.kvHeads(); h++) {
        for (int s = 1; s < 4; s++) {
          for (int d = 0; d < hd; d++) {
            int e = (h * bs + s) * hd + d;
            int src = (h * stride + s) * hd + d;
            assertEquals(k[src], out.getFloat(4L * e), "K head " + h + " slot " + s + " dim " + d);
            assertEquals(
                v[src], out.getFloat(4L * (half + e)), "V head " + h + " slot " + s + " dim " + d);
          }
        }
      }
      // and copy back into another block
      pool.copyLayerIn(blocks[0], 0, out, 0);
      float[] k3 = new float[k.length];
      float[] v3 = new float[k.length];
      pool.read(blocks[0], 0, 1, 3, k3, v3, hd, stride);
      assertArrayEquals(k2, k3);
      assertArrayEquals(v2, v3);
      pool.free(blocks);
    }
  }

  @Test
  void outOfRangeCopiesFail() {
    try (KvBlockPool pool = new KvBlockPool(root, layout, 2L * layout.blockBytes())) {
      float[] k = new float[layout.kvHeads() * 8 * layout.headDim()];
      assertThrows(IndexOutOfBoundsException.class, () -> pool.write(2, 0, 0, 1, k, k, 0, 8));
      assertThrows(IndexOutOfBoundsException.class, () -> pool.write(0, 3, 0, 1, k, k, 0, 8));
      assertThrows(IndexOutOfBoundsException.class, () -> pool.write(0, 0, 3, 2, k, k, 0, 8));
    }
  }

  @Test
  void concurrentAllocateAndFreeNeverHandOutABlockTwice() throws Exception {
    try (KvBlockPool pool = new KvBlockPool(root, layout, 64L * layout.blockBytes())) {
      ExecutorService ex = Executors.newFixedThreadPool(4);
      try {
        Set<Integer> held = ConcurrentHashMap.newKeySet();
        List<Future<?>> fs = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
          int seed = t;
          fs.add(
              ex.submit(
                  () -> {
                    Random r = new Random(seed);
                    for (int i = 0; i < 2000; i++) {
                      int[] got;
                      try {
                        got = pool.allocate(1 + r.nextInt(8));
                      } catch (KvPoolExhaustedException e) {
                        continue;
                      }
                      for (int b : got) {
                        if (!held.add(b)) {
                          throw new AssertionError("block " + b + " handed out twice");
                        }
                      }
                      for (int b : got) {
                        held.remove(b);
                      }
                      pool.free(got);
                    }
                    return null;
                  }));
        }
        for (Future<?> f : fs) {
          f.get();
        }
      } finally {
        ex.shutdownNow();
      }
      assertEquals(64, pool.freeBlocks());
    }
  }

  @Test
  void closeReleasesThePoolMemory() {
    KvBlockPool pool = new KvBlockPool(root, layout, 8L * layout.blockBytes());
    assertTrue(root.getAllocatedMemory() >= 8L * layout.blockBytes());
    pool.close();
    pool.close();
    assertEquals(0, root.getAllocatedMemory());
    assertThrows(IllegalStateException.class, () -> pool.allocate(1));
  }
}
