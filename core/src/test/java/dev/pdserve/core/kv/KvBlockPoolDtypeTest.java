package dev.pdserve.core.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A pool of fp16 or bf16 KV: 2-byte elements (half the bytes per block, twice the blocks for a
 * budget), written from fp32 by rounding to nearest even (exact for values already of the dtype),
 * read back widened exactly, and moved between pools as raw bytes.
 */
class KvBlockPoolDtypeTest {
  private static final ModelConfig TINY = ModelPresets.get("tiny");
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
  void halfLayoutsTakeHalfTheBytesOfFp32() {
    ModelConfig ernie = ModelPresets.get("ernie-4.5-vl-28b-a3b");
    assertEquals(114_688, KvLayout.of(ernie, KvDtype.FP32).bytesPerToken());
    assertEquals(57_344, KvLayout.of(ernie, KvDtype.BF16).bytesPerToken()); // 56 KiB, DESIGN §1
    assertEquals(57_344, KvLayout.of(ernie, KvDtype.FP16).bytesPerToken());
    KvLayout full = KvLayout.of(TINY, KvDtype.FP32);
    for (KvDtype d : new KvDtype[] {KvDtype.FP16, KvDtype.BF16}) {
      KvLayout half = KvLayout.of(TINY, d);
      assertEquals(2, half.elementBytes());
      assertEquals(full.layerElements(), half.layerElements());
      assertEquals(full.layerBytes() / 2, half.layerBytes());
      assertEquals(full.blockBytes() / 2, half.blockBytes());
      assertNotEquals(full, half, "layouts of different dtypes must not be equal");
    }
    assertNotEquals(KvLayout.of(TINY, KvDtype.FP16), KvLayout.of(TINY, KvDtype.BF16));
  }

  @ParameterizedTest
  @EnumSource(
      value = KvDtype.class,
      names = {"FP16", "BF16"})
  void aBudgetHoldsTwiceTheBlocksOfFp32(KvDtype dtype) {
    KvLayout full = KvLayout.of(TINY, KvDtype.FP32);
    long budget = 10L * full.blockBytes() + 5;
    try (KvBlockPool fp32 = new KvBlockPool(root, "fp32", full, budget);
        KvBlockPool half = new KvBlockPool(root, "half", KvLayout.of(TINY, dtype), budget)) {
      assertEquals(10, fp32.totalBlocks());
      assertEquals(20, half.totalBlocks(), dtype + " pool of the same budget");
      assertEquals(20, half.allocate(20).length);
    }
  }

  /** [kvHeads][positions][headDim] values of {@code dtype} (representable), from a seed. */
  private static float[] representable(KvDtype dtype, KvLayout layout, int positions, long seed) {
    Random r = new Random(seed);
    float[] x = new float[layout.kvHeads() * positions * layout.headDim()];
    for (int i = 0; i < x.length; i++) {
      x[i] = dtype.round((float) (r.nextGaussian() * 3));
    }
    x[0] = dtype.round(1e-6f); // a small (for fp16: subnormal) value
    x[1] = -0f;
    return x;
  }

  private static int[] bits(float[] f) {
    int[] b = new int[f.length];
    for (int i = 0; i < f.length; i++) {
      b[i] = Float.floatToRawIntBits(f[i]);
    }
    return b;
  }

  @ParameterizedTest
  @EnumSource(
      value = KvDtype.class,
      names = {"FP16", "BF16"})
  void representableValuesRoundTripExactlyAndOthersRoundToNearestEven(KvDtype dtype) {
    KvLayout layout = KvLayout.of(TINY, 4, dtype);
    int bs = layout.blockSize();
    try (KvBlockPool pool = new KvBlockPool(root, layout, 4L * layout.blockBytes())) {
      int[] blocks = pool.allocate(2);
      float[] k = representable(dtype, layout, bs, 1);
      float[] v = representable(dtype, layout, bs, 2);
      pool.write(blocks[0], 1, 0, bs, k, v, 0, bs);
      float[] k2 = new float[k.length];
      float[] v2 = new float[v.length];
      pool.read(blocks[0], 1, 0, bs, k2, v2, 0, bs);
      assertArrayEquals(bits(k), bits(k2), dtype + " K did not round-trip bit for bit");
      assertArrayEquals(bits(v), bits(v2), dtype + " V did not round-trip bit for bit");

      Random r = new Random(3);
      float[] raw = new float[k.length];
      for (int i = 0; i < raw.length; i++) {
        raw[i] = (float) r.nextGaussian();
      }
      pool.write(blocks[1], 0, 0, bs, raw, raw, 0, bs);
      float[] back = new float[raw.length];
      pool.read(blocks[1], 0, 0, bs, back, new float[raw.length], 0, bs);
      for (int i = 0; i < raw.length; i++) {
        assertEquals(dtype.round(raw[i]), back[i], dtype + " element " + i + " of " + raw[i]);
      }
      pool.free(blocks);
    }
  }

  @ParameterizedTest
  @EnumSource(
      value = KvDtype.class,
      names = {"FP16", "BF16"})
  void layerBytesAreLittleEndianHalvesAndMoveBetweenPoolsUnchanged(KvDtype dtype) {
    KvLayout layout = KvLayout.of(TINY, 4, dtype);
    int bs = layout.blockSize();
    int hd = layout.headDim();
    try (KvBlockPool a = new KvBlockPool(root, "a", layout, 2L * layout.blockBytes());
        KvBlockPool b = new KvBlockPool(root, "b", layout, 2L * layout.blockBytes());
        ArrowBuf row = root.buffer(layout.layerBytes())) {
      int[] src = a.allocate(1);
      int[] dst = b.allocate(1);
      float[] k = representable(dtype, layout, bs, 4);
      float[] v = representable(dtype, layout, bs, 5);
      a.write(src[0], 2, 0, bs, k, v, 0, bs);
      a.copyLayerOut(src[0], 2, row, 0);
      ByteBuffer le = row.nioBuffer(0, layout.layerBytes()).order(ByteOrder.LITTLE_ENDIAN);
      int half = layout.halfElements();
      for (int h = 0; h < layout.kvHeads(); h++) {
        for (int s = 0; s < bs; s++) {
          for (int d = 0; d < hd; d++) {
            int e = (h * bs + s) * hd + d;
            assertEquals(dtype.toBits(k[e]), le.getShort(2 * e), "K bits at element " + e);
            assertEquals(dtype.toBits(v[e]), le.getShort(2 * (half + e)), "V bits at " + e);
          }
        }
      }
      try (ArrowBuf view = a.retainLayer(src[0], 2)) {
        assertEquals(layout.layerBytes(), view.capacity());
        b.copyLayerIn(dst[0], 0, view, 0);
      }
      float[] k2 = new float[k.length];
      float[] v2 = new float[v.length];
      b.read(dst[0], 0, 0, bs, k2, v2, 0, bs);
      assertArrayEquals(bits(k), bits(k2), "K after a raw copy between " + dtype + " pools");
      assertArrayEquals(bits(v), bits(v2), "V after a raw copy between " + dtype + " pools");
      a.free(src);
      b.free(dst);
    }
  }
}
