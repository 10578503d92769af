package dev.pdserve.model.quant;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
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

  /** {@code m}'s arrays copied into direct, native-order buffers. */
  public static QuantizedBuffers direct(QuantizedMatrix m) {
    ByteBuffer codes = ByteBuffer.allocateDirect(m.codes().length).order(ByteOrder.nativeOrder());
    codes.put(m.codes()).flip();
    FloatBuffer scales =
        ByteBuffer.allocateDirect(m.scales().length * 4)
            .order(ByteOrder.nativeOrder())
            .asFloatBuffer();
    scales.put(m.scales()).flip();
    ByteBuffer zp = ByteBuffer.allocateDirect(m.zeroPoints().length).order(ByteOrder.nativeOrder());
    zp.put(m.zeroPoints()).flip();
    return new QuantizedBuffers(m.n(), m.k(), m.format(), codes, scales, zp);
  }

  /**
   * The matrix as its quantized values say, row-major {@code [n, k]}, in a direct native-order
   * buffer: the same bits as {@link QuantizedMatrix#dequantize()}, without an array of the whole
   * matrix on the heap.
   */
  public FloatBuffer dequantize() {
    QuantFormat f = format;
    int blocks = f.blocks(k);
    int bits = f.bits();
    FloatBuffer out =
        ByteBuffer.allocateDirect(Math.multiplyExact(Math.multiplyExact(n, k), 4))
            .order(ByteOrder.nativeOrder())
            .asFloatBuffer();
    int c0 = codes.position();
    int s0 = scales.position();
    int z0 = zeroPoints.position();
    int zpRow = f.zeroPointBytesPerRow(k);
    for (int r = 0; r < n; r++) {
      for (int blk = 0; blk < blocks; blk++) {
        int zp = f.defaultZeroPoint();
        if (f.zeroPoints()) {
          int bit = blk * bits;
          zp = ((zeroPoints.get(z0 + r * zpRow + bit / 8) & 0xff) >>> (bit % 8)) & f.maxCode();
        }
        float scale = scales.get(s0 + r * blocks + blk);
        int base = c0 + (r * blocks + blk) * f.blobBytes();
        int end = Math.min(k, (blk + 1) * f.blockSize());
        for (int c = blk * f.blockSize(); c < end; c++) {
          int bit = (c - blk * f.blockSize()) * bits;
          int code = ((codes.get(base + bit / 8) & 0xff) >>> (bit % 8)) & f.maxCode();
          out.put(r * k + c, (code - zp) * scale);
        }
      }
    }
    return out;
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
