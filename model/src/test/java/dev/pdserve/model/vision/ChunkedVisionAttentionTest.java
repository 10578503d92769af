package dev.pdserve.model.vision;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.config.VisionConfig;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelWeights;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The vision tower's attention computed in query chunks ({@code pdserve.vision.attention-chunk})
 * gives the same features as the whole image at once, bit for bit on ONNX Runtime's CPU provider,
 * for images spanning several chunks (a last partial chunk, an exact multiple, one-row chunks), and
 * an image at the {@code small} preset's {@code max_pixels} encodes in 16 chunks with the rows of a
 * 4-chunk encoder.
 */
class ChunkedVisionAttentionTest {
  static final int WHOLE = Integer.MAX_VALUE;

  static ModelConfig tiny;
  static ModelWeights tinyWeights;
  static VisionEncoder whole;

  @BeforeAll
  static void setUp() {
    tiny = ModelPresets.get("tiny");
    tinyWeights = new ModelWeights(tiny, new DummyWeights(tiny, 5), OrtRuntime.shared());
    whole = new VisionEncoder(tiny, tinyWeights, OrtRuntime.shared(), WHOLE);
  }

  @AfterAll
  static void tearDown() {
    whole.close();
    tinyWeights.close();
  }

  /** An image of {@code gridH × gridW} patches of random values (patches in any order will do). */
  static PatchedImage randomImage(VisionConfig v, int gridH, int gridW, long seed) {
    Random r = new Random(seed);
    float[] p = new float[gridH * gridW * v.patchValues()];
    for (int i = 0; i < p.length; i++) {
      p[i] = (float) r.nextGaussian();
    }
    return new PatchedImage(gridH, gridW, v.spatialMerge(), v.patchValues(), p);
  }

  /** Index of the first float whose bits differ, or -1. */
  static int firstDifference(float[] a, float[] b) {
    assertEquals(a.length, b.length, "feature count");
    for (int i = 0; i < a.length; i++) {
      if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) {
        return i;
      }
    }
    return -1;
  }

  static void assertSameFeatures(float[] expected, float[] actual, int width, String what) {
    int i = firstDifference(expected, actual);
    assertEquals(
        -1,
        i,
        () ->
            what
                + ": patch "
                + i / width
                + " dim "
                + i % width
                + " is "
                + actual[i]
                + ", unchunked "
                + expected[i]);
  }

  // 14 x 10 = 140 patches: 8 chunks of 16 and a last, partial block of 12; 19 chunks of 7 and a
  // last block of 7; 137 and 138 patches leave a last block of 3 and 2 rows; 2 is the smallest
  // chunk (one-row blocks would take MLAS's one-row kernel); 139 takes the whole image at once
  @ParameterizedTest(name = "chunks of {0} patches")
  @ValueSource(ints = {139, 138, 137, 100, 16, 7, 3, 2})
  void chunkedAttentionGivesTheUnchunkedFeaturesBitForBit(int chunk) {
    VisionConfig v = tiny.vision().orElseThrow();
    PatchedImage img = randomImage(v, 14, 10, chunk);
    try (VisionEncoder chunked = new VisionEncoder(tiny, tinyWeights, OrtRuntime.shared(), chunk)) {
      assertEquals(chunk, chunked.attentionChunk());
      assertSameFeatures(
          whole.features(img), chunked.features(img), v.width(), "chunks of " + chunk);
      assertSameFeatures(
          whole.encode(img), chunked.encode(img), tiny.hidden(), "LM rows, chunks of " + chunk);
    }
  }

  @Test
  void anImageOfAtMostOneChunkIsEncodedWhole() {
    VisionConfig v = tiny.vision().orElseThrow();
    try (VisionEncoder chunked = new VisionEncoder(tiny, tinyWeights, OrtRuntime.shared(), 23)) {
      for (int[] grid : new int[][] {{2, 2}, {4, 6}, {6, 4}, {2, 12}}) { // 4 to 24 patches
        PatchedImage img = randomImage(v, grid[0], grid[1], grid[0] * 100L + grid[1]);
        assertSameFeatures(
            whole.features(img), chunked.features(img), v.width(), grid[0] + "x" + grid[1]);
      }
    }
  }

  @Test
  void aChunkBelowTwoPatchesIsRefused() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> new VisionEncoder(tiny, tinyWeights, OrtRuntime.shared(), 1));
    assertTrue(e.getMessage().contains("must be >= 2 patches, got 1"), e.getMessage());
  }

  @Test
  void anImageAtTheSmallPresetsMaxPixelsEncodesInSixteenChunks() {
    ModelConfig small = ModelPresets.get("small");
    VisionConfig v = small.vision().orElseThrow();
    int side = (int) Math.sqrt(v.maxPixels()) / v.patchSize(); // 64 x 64 = 4096 patches
    assertEquals(v.maxPixels(), (long) side * side * v.patchSize() * v.patchSize());
    PatchedImage img = randomImage(v, side, side, 9);
    OrtRuntime rt = OrtRuntime.shared();
    try (ModelWeights w = new ModelWeights(small, new DummyWeights(small, 3), rt);
        VisionEncoder sixteen =
            new VisionEncoder(small, w, rt, VisionEncoder.DEFAULT_ATTENTION_CHUNK);
        VisionEncoder four = new VisionEncoder(small, w, rt, 1024)) {
      assertEquals(16, img.patchCount() / sixteen.attentionChunk());
      float[] rows = sixteen.encode(img);
      assertEquals(img.tokens() * small.hidden(), rows.length, "one LM row per merged patch");
      for (float f : rows) {
        assertTrue(Float.isFinite(f), "a non-finite LM row value");
      }
      assertSameFeatures(four.encode(img), rows, small.hidden(), "16 chunks against 4");
    }
  }
}
