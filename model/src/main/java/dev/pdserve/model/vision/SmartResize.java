package dev.pdserve.model.vision;

import dev.pdserve.model.config.VisionConfig;

/**
 * The ERNIE-4.5-VL image processor's "smart resize": each side is rounded to the nearest multiple
 * of {@code factor} (patch × merge, 28; halves to even, as Python's {@code round}), then both are
 * scaled down, keeping the aspect ratio, when the area is over {@code maxPixels}, or up when it is
 * under {@code minPixels}. Images more than 200 times wider than tall (or the reverse) are refused,
 * as the released processor refuses them.
 */
public final class SmartResize {
  /** The largest aspect ratio the released processor accepts. */
  public static final double MAX_ASPECT_RATIO = 200;

  private SmartResize() {}

  /** The size {@code vision}'s preprocessing resizes an image of {@code original} to. */
  public static ImageSize target(ImageSize original, VisionConfig vision) {
    return target(
        original.height(),
        original.width(),
        vision.resizeFactor(),
        vision.minPixels(),
        vision.maxPixels());
  }

  /**
   * @throws InvalidImageException when the aspect ratio is over {@value #MAX_ASPECT_RATIO}
   */
  public static ImageSize target(
      int height, int width, int factor, long minPixels, long maxPixels) {
    double ratio = (double) Math.max(height, width) / Math.min(height, width);
    if (ratio > MAX_ASPECT_RATIO) {
      throw new InvalidImageException(
          "image is "
              + width
              + "x"
              + height
              + " pixels, an aspect ratio of "
              + String.format("%.1f", ratio)
              + "; at most "
              + (int) MAX_ASPECT_RATIO
              + " is supported");
    }
    long h = Math.round(Math.rint((double) height / factor)) * factor;
    long w = Math.round(Math.rint((double) width / factor)) * factor;
    double area = (double) height * width;
    if (h * w > maxPixels) {
      double beta = Math.sqrt(area / maxPixels);
      h = Math.max(factor, (long) Math.floor(height / beta / factor) * factor);
      w = Math.max(factor, (long) Math.floor(width / beta / factor) * factor);
    } else if (h * w < minPixels) {
      double beta = Math.sqrt(minPixels / area);
      h = (long) Math.ceil(height * beta / factor) * factor;
      w = (long) Math.ceil(width * beta / factor) * factor;
    }
    return new ImageSize((int) h, (int) w);
  }
}
