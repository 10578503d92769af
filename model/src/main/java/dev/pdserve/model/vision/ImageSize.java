package dev.pdserve.model.vision;

/** An image's size in pixels. */
public record ImageSize(int height, int width) {
  public long pixels() {
    return (long) height * width;
  }

  @Override
  public String toString() {
    return width + "x" + height;
  }
}
