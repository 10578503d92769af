package dev.pdserve.model.vision;

/**
 * A decoded image: 8-bit RGB, row-major, three bytes per pixel ({@code rgb[(y·width + x)·3 + c]},
 * read unsigned).
 */
public record RgbImage(int width, int height, byte[] rgb) {
  public RgbImage {
    if (width <= 0 || height <= 0) {
      throw new IllegalArgumentException(
          "an image needs a positive size, got " + width + "x" + height);
    }
    if (rgb.length != (long) width * height * 3) {
      throw new IllegalArgumentException(
          "a "
              + width
              + "x"
              + height
              + " RGB image needs "
              + (long) width * height * 3
              + " bytes, got "
              + rgb.length);
    }
  }

  /** Channel {@code c} (0 red, 1 green, 2 blue) of pixel (x, y), 0..255. */
  public int value(int x, int y, int c) {
    return rgb[(y * width + x) * 3 + c] & 0xff;
  }
}
