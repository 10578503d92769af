package dev.pdserve.model.vision;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.config.VisionConfig;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ImagePreprocessorTest {
  static final VisionConfig REAL = ModelPresets.get("ernie-4.5-vl-28b-a3b").vision().orElseThrow();
  static final VisionConfig TINY = ModelPresets.get("tiny").vision().orElseThrow();

  /**
   * Sizes from the released processor's {@code smart_resize} (transformers' {@code
   * image_processing_ernie4_5_vl_moe.py}), computed with Python for these inputs: 42 → 56 and 70 →
   * 56 are the halves (1.5 and 2.5 round to 2), 98 → 112 and 126 → 112 too (3.5 → 4, 4.5 → 4).
   */
  @ParameterizedTest(name = "{0}x{1} -> {2}x{3}")
  @CsvSource({
    "42, 70, 56, 56",
    "70, 42, 56, 56",
    "98, 126, 112, 112",
    "1000, 1000, 1008, 1008",
    "1080, 1920, 1092, 1932",
    "30, 600, 28, 588",
    "56, 56, 56, 56",
    "4000, 3000, 2520, 1904",
    "10, 10, 56, 56",
    "14, 1000, 28, 476"
  })
  void smartResizeMatchesTheReleasedProcessor(int h, int w, int expectH, int expectW) {
    ImageSize got = SmartResize.target(new ImageSize(h, w), REAL);
    assertEquals(new ImageSize(expectH, expectW), got, "smart resize of " + w + "x" + h);
  }

  @Test
  void smartResizeScalesDownToTheMaximumAndUpToTheMinimum() {
    // 1000² is over tiny's 28²·256 pixels: scaled down, aspect kept, to multiples of 28.
    assertEquals(new ImageSize(448, 448), SmartResize.target(new ImageSize(1000, 1000), TINY));
    assertEquals(new ImageSize(168, 1148), SmartResize.target(new ImageSize(300, 2000), TINY));
    ImageSize down = SmartResize.target(new ImageSize(4000, 3000), REAL);
    assertTrue(down.pixels() <= REAL.maxPixels(), "scaled down to at most max_pixels: " + down);
    ImageSize up = SmartResize.target(new ImageSize(10, 10), REAL);
    assertTrue(up.pixels() >= REAL.minPixels(), "scaled up to at least min_pixels: " + up);
  }

  @Test
  void extremeAspectRatiosAreRefused() {
    InvalidImageException e =
        assertThrows(
            InvalidImageException.class, () -> SmartResize.target(new ImageSize(10, 2010), REAL));
    assertTrue(e.getMessage().contains("aspect ratio of 201.0; at most 200"), e.getMessage());
  }

  static RgbImage pattern(int w, int h) {
    byte[] b = new byte[w * h * 3];
    int i = 0;
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        for (int c = 0; c < 3; c++) {
          b[i++] = (byte) ((x * 37 + y * 91 + c * 53 + (x * y) % 17 + ((x ^ y) & 7) * 29) & 0xff);
        }
      }
    }
    return new RgbImage(w, h, b);
  }

  /**
   * SHA-256 of Pillow 9.4's {@code Image.resize((w, h), Image.BICUBIC)} of {@link #pattern}:
   * shrinking, enlarging, both at once, one side only, and a wide image.
   */
  @ParameterizedTest(name = "{0}x{1} -> {2}x{3}")
  @CsvSource({
    "200, 150, 84, 56, 409731764566441d44de6656817f5d88cc8347e79fb6b63d3dfc3e129800f3b9",
    "30, 20, 56, 56, 0a7afc9aa2f450f30f1752a0f624cb4c9191fa02a39d015bb6f5c3eb9da5670a",
    "100, 40, 84, 56, b8c413670ac5ccd301489a8461490a747dc631a4e11dc9ef30965dbe3f400f45",
    "60, 56, 84, 56, b3b7ebdb3cd6622e11267119d51a11703633f66d055358b1a671bebcd877aa4b",
    "57, 93, 28, 140, fd121a5f09b99c55332d1a74450d72ef435ff3fd56365975c399e1531686a585",
    "641, 97, 196, 28, edab6d36d16cc143f88a0d6b0382bfc8753c797bda86ecbc952c6363335ccb46"
  })
  void bicubicResizeMatchesPillowPixelForPixel(int w, int h, int ow, int oh, String sha256)
      throws NoSuchAlgorithmException {
    RgbImage out = BicubicResampler.resize(pattern(w, h), ow, oh);
    assertEquals(ow, out.width());
    assertEquals(oh, out.height());
    String got = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(out.rgb()));
    assertEquals(
        sha256,
        got,
        "resize of "
            + w
            + "x"
            + h
            + " to "
            + ow
            + "x"
            + oh
            + " differs from Pillow's (first"
            + " pixel "
            + out.value(0, 0, 0)
            + ","
            + out.value(0, 0, 1)
            + ","
            + out.value(0, 0, 2)
            + ")");
  }

  @Test
  void patchesAreChannelMajorInMergeWindowOrderAndNormalised() {
    // 56 x 84: a 4 x 6 patch grid, 2 x 3 merge windows. Each pixel encodes its own coordinates.
    int w = 56;
    int h = 84;
    byte[] rgb = new byte[w * h * 3];
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        rgb[(y * w + x) * 3] = (byte) x;
        rgb[(y * w + x) * 3 + 1] = (byte) y;
        rgb[(y * w + x) * 3 + 2] = (byte) 200;
      }
    }
    ImagePreprocessor pre =
        new ImagePreprocessor(TINY, new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS));
    PatchedImage img = pre.preprocess(new RgbImage(w, h, rgb));
    assertEquals(6, img.gridH());
    assertEquals(4, img.gridW());
    assertEquals(3, img.mergedH());
    assertEquals(2, img.mergedW());
    assertEquals(6, img.tokens());
    assertEquals(588, img.patchValues());
    int p = 14;
    // Patch order: window (0,0) holds patches (0,0) (0,1) (1,0) (1,1); window (0,1) comes next.
    int[][] expected = {{0, 0}, {0, 1}, {1, 0}, {1, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 0}};
    for (int i = 0; i < expected.length; i++) {
      assertEquals(expected[i][0], img.patchRow(i), "row of patch " + i);
      assertEquals(expected[i][1], img.patchCol(i), "column of patch " + i);
      int top = expected[i][0] * p;
      int left = expected[i][1] * p;
      for (int py = 0; py < p; py += 5) {
        for (int px = 0; px < p; px += 3) {
          int base = i * 588;
          // Channel-major: all red values of the patch, then green, then blue.
          assertEquals(norm(left + px, 0), img.patches()[base + py * p + px], 1e-6, "red");
          assertEquals(norm(top + py, 1), img.patches()[base + 196 + py * p + px], 1e-6, "green");
          assertEquals(norm(200, 2), img.patches()[base + 392 + py * p + px], 1e-6, "blue");
        }
      }
    }
  }

  private static float norm(int v, int c) {
    return (float) ((v / 255.0 - TINY.imageMean().get(c)) / TINY.imageStd().get(c));
  }
}
