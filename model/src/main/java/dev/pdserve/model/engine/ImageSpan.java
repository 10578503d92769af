package dev.pdserve.model.engine;

import dev.pdserve.model.vision.PatchedImage;

/**
 * Where one image sits in a rendered prompt: its placeholder tokens start at index {@code start}
 * (right after its {@code <|IMAGE_START|>}), one per merged patch, a {@link #gridH} × {@link
 * #gridW} grid in row-major order.
 */
public record ImageSpan(int start, PatchedImage image) {
  /** Rows of the merged grid. */
  public int gridH() {
    return image.mergedH();
  }

  /** Columns of the merged grid. */
  public int gridW() {
    return image.mergedW();
  }

  /** Placeholder tokens of the image. */
  public int tokens() {
    return image.tokens();
  }

  /** Index just past the image's last placeholder (where its {@code <|IMAGE_END|>} is). */
  public int end() {
    return start + tokens();
  }
}
