package dev.pdserve.loadgen.dataset;

import java.util.Locale;

/**
 * The generated images of {@code --dataset-name random-mm}: {@code --images-per-request} images of
 * {@code --image-size WxH} pixels each.
 *
 * @param perRequest images in every request
 * @param width pixels across
 * @param height pixels down
 */
public record ImageOptions(int perRequest, int width, int height) {
  /** The largest side accepted: the released processor's pixel bound is 28² × 6177 (≈ 2200²). */
  public static final int MAX_SIDE = 16384;

  /** No images (the text datasets). */
  public static final ImageOptions NONE = new ImageOptions(0, 1, 1);

  /** Checks the options; messages name the option. */
  public void validate() {
    if (perRequest < 1 || perRequest > 64) {
      throw new IllegalArgumentException(
          "--images-per-request must be in 1..64, got " + perRequest);
    }
    if (width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE) {
      throw new IllegalArgumentException(
          "--image-size sides must be in 1.." + MAX_SIDE + " pixels, got " + width + "x" + height);
    }
  }

  /** {@code WxH} as printed in reports. */
  public String size() {
    return width + "x" + height;
  }

  /**
   * An upper bound on the prompt tokens of one image in an ERNIE-4.5-VL prompt: one placeholder per
   * 28 × 28 pixels (sides rounded, at least 2 × 2 merged patches, never more when the model scales
   * a large image down) plus its frame ({@code Picture N:}, start and end tokens).
   */
  public int tokensPerImageAtMost() {
    long h = Math.max(1, Math.round(height / 28.0));
    long w = Math.max(1, Math.round(width / 28.0));
    return (int) Math.min(Integer.MAX_VALUE / 2, Math.max(4, h * w) + 8);
  }

  /** Parses {@code --image-size}: {@code 448x448} (or {@code 448X448}, {@code 448*448}). */
  public static int[] parseSize(String s) {
    String[] parts = s.trim().toLowerCase(Locale.ROOT).split("[x*]");
    if (parts.length == 2) {
      try {
        return new int[] {Integer.parseInt(parts[0].trim()), Integer.parseInt(parts[1].trim())};
      } catch (NumberFormatException e) {
        // fall through
      }
    }
    throw new IllegalArgumentException(
        "--image-size takes WIDTHxHEIGHT in pixels, like 448x448, got '" + s + "'");
  }
}
