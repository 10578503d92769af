package dev.pdserve.model.vision;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import com.sun.management.ThreadMXBean;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.config.VisionConfig;
import java.lang.management.ManagementFactory;
import org.junit.jupiter.api.Test;

/**
 * Fuzzes image input as the router takes it: any bytes through {@link ImageDecoder} (with the
 * router's {@link ImageDecoder#DEFAULT_MAX_PIXELS} bound) and {@link ImagePreprocessor} (the {@code
 * tiny} preset's vision settings). Whatever the bytes, the result is either a refusal with the
 * decoder's own client error ({@link InvalidImageException}, with a message) or an image within the
 * bounds: at most the pixel limit when decoded, a patch grid within the model's pixel bounds and
 * finite values when preprocessed. Nothing else escapes (no ImageIO exception, no {@code Error}),
 * and a run's heap grows with the bytes given, not with what a header claims. See docs/SECURITY.md,
 * "Fuzzing".
 */
class ImageDecodingFuzzTest {
  private static final ImageDecoder DECODER = new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS);
  private static final VisionConfig VISION = ModelPresets.get("tiny").vision().orElseThrow();
  private static final ImagePreprocessor PREPROCESSOR = new ImagePreprocessor(VISION, DECODER);

  /**
   * Heap one run may take: fixed costs plus at most 32 KiB per byte of input. A PNG can hold at
   * most ~1032 bytes of samples per compressed byte (deflate's limit) and a JPEG at most 64 pixels
   * per bit, so a legitimate image stays well inside; far more means pixels a header declared were
   * allocated before the data to fill them was there (libFuzzer's inputs are at most 4 KiB: a bound
   * of 192 MiB against the ~0.7 GiB a 60-byte header declaring 89M 16-bit pixels would cost).
   */
  private static final long FIXED_HEAP = 64L << 20;

  private static final long HEAP_PER_INPUT_BYTE = 32L << 10;

  private static final ThreadMXBean THREADS = (ThreadMXBean) ManagementFactory.getThreadMXBean();

  private static boolean classesLoaded;

  @FuzzTest(maxDuration = "20s")
  void anyBytesDecodeOrAreRefused(byte[] bytes) {
    loadClassesOnce();
    long before = THREADS.getCurrentThreadAllocatedBytes();
    try {
      RgbImage rgb = DECODER.decode(new EncodedImage(bytes));
      long pixels = (long) rgb.width() * rgb.height();
      assertTrue(
          pixels <= DECODER.maxPixels(),
          rgb.width() + "x" + rgb.height() + " decoded, over the limit of " + DECODER.maxPixels());
      PatchedImage p = PREPROCESSOR.preprocess(rgb);
      checkPatched(p, rgb);
    } catch (InvalidImageException e) {
      assertTrue(e.getMessage() != null && !e.getMessage().isBlank(), "a refusal says why: " + e);
    }
    long allocated = THREADS.getCurrentThreadAllocatedBytes() - before;
    long bound = FIXED_HEAP + HEAP_PER_INPUT_BYTE * bytes.length;
    assertTrue(
        allocated < bound,
        "a run over "
            + bytes.length
            + " bytes allocated "
            + allocated
            + " bytes of heap, more than the bound of "
            + bound);
  }

  private static void checkPatched(PatchedImage p, RgbImage from) {
    String what = "a " + from.width() + "x" + from.height() + " image preprocessed to ";
    long h = (long) p.gridH() * VISION.patchSize();
    long w = (long) p.gridW() * VISION.patchSize();
    what += w + "x" + h + " pixels";
    assertEquals(0, h % VISION.resizeFactor(), what + ": not whole merged patches");
    assertEquals(0, w % VISION.resizeFactor(), what + ": not whole merged patches");
    assertTrue(h * w <= VISION.maxPixels(), what + ": over max_pixels " + VISION.maxPixels());
    assertEquals(VISION.patchValues(), p.patchValues(), what);
    for (float v : p.patches()) {
      assertFalse(Float.isNaN(v) || Float.isInfinite(v), what + ": a patch value is " + v);
    }
  }

  /** The seeds decode: the fuzzer starts from images that reach the whole pipeline. */
  @Test
  void aSmallPngGoesThroughThePipeline() {
    RgbImage png = DECODER.decode(TestImages.png(5, 3, 1));
    checkPatched(PREPROCESSOR.preprocess(png), png);
  }

  /**
   * Decodes a small image once per JVM before the first measured run: loading (and, while fuzzing,
   * instrumenting) ImageIO's classes allocates far more than a run does.
   */
  private void loadClassesOnce() {
    if (!classesLoaded) {
      classesLoaded = true;
      aSmallPngGoesThroughThePipeline();
      try {
        DECODER.decode(new EncodedImage(new byte[] {(byte) 0xff, (byte) 0xd8, (byte) 0xff, 0}));
      } catch (InvalidImageException e) {
        // the JPEG reader's classes are loaded
      }
    }
  }
}
