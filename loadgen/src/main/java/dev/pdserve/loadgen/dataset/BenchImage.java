package dev.pdserve.loadgen.dataset;

/**
 * One image of a request, as sent: its encoded file and what it shows.
 *
 * @param mediaType {@code image/png}
 * @param data the encoded file
 * @param width pixels across
 * @param height pixels down
 */
public record BenchImage(String mediaType, byte[] data, int width, int height) {
  public BenchImage {
    if (data == null || data.length == 0) {
      throw new IllegalArgumentException("an image needs its bytes");
    }
  }
}
