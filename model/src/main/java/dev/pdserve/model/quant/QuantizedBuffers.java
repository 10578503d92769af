package dev.pdserve.model.quant;

import java.nio.ByteBuffer;
import java.nio.FloatBuffer;

/**
 * A {@code [n, k]} weight in a {@link QuantFormat} as direct buffers, laid out as {@link
 * QuantizedMatrix}'s arrays: views of a pre-quantized checkpoint's memory mapping (no copy), for
 * ONNX Runtime to read in place.
 *
 * @param codes {@code n·blocks·blobBytes} bytes
 * @param scales {@code n·blocks} values, native order
 * @param zeroPoints {@code n·zeroPointBytesPerRow} bytes (none without zero points)
 */
public record QuantizedBuffers(
    int n, int k, QuantFormat format, ByteBuffer codes, FloatBuffer scales, ByteBuffer zeroPoints) {
  public QuantizedBuffers {
    int blocks = format.blocks(k);
    check("codes", codes.remaining(), (long) n * blocks * format.blobBytes(), codes.isDirect());
    check("scales", scales.remaining(), (long) n * blocks, scales.isDirect());
    check(
        "zero points",
        zeroPoints.remaining(),
        (long) n * format.zeroPointBytesPerRow(k),
        zeroPoints.isDirect());
  }

  private static void check(String what, long have, long want, boolean direct) {
    if (have != want) {
      throw new IllegalArgumentException(what + ": " + have + " elements, expected " + want);
    }
    if (!direct) {
      throw new IllegalArgumentException(what + " must be a direct buffer");
    }
  }

  /** The same values copied into arrays. */
  public QuantizedMatrix toMatrix() {
    byte[] c = new byte[codes.remaining()];
    codes.duplicate().get(c);
    float[] s = new float[scales.remaining()];
    scales.duplicate().get(s);
    byte[] z = new byte[zeroPoints.remaining()];
    zeroPoints.duplicate().get(z);
    return new QuantizedMatrix(n, k, format, c, s, z);
  }
}
