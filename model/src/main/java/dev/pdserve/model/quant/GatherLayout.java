package dev.pdserve.model.quant;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * How ONNX Runtime 1.24.2's CPU {@code com.microsoft.GatherBlockQuantized} reads a table {@code [n,
 * k]} quantized in a {@link QuantFormat} (uint8 data, the {@code bits} attribute, gathered along
 * axis 0, quantized along axis 1): the same bytes as MatMulNBits' ({@link QuantizedMatrix}) in 2-D
 * shapes — codes {@code [n, blocks·blobBytes]}, scales {@code [n, blocks]}, zero points {@code [n,
 * ⌈blocks·bits/8⌉]} — with one difference, measured ({@code GatherBlockQuantizedTest}): the kernel
 * indexes 4-bit zero points as one run over the whole table (nibble {@code row·blocks + block}),
 * not row by row as MatMulNBits packs them, while its shape check still asks for {@code [n,
 * ⌈blocks/2⌉]}. With an even number of blocks per row the two packings are the same bytes; with an
 * odd number the zero points are repacked ({@link #zeroPoints}, a copy of {@code n·blocks/2}
 * bytes). Later ONNX Runtime versions index them row by row; the test says when that changes.
 *
 * <p>The kernel takes 4 and 8 bits only (2-bit is refused at session creation) and computes each
 * value as {@code (float) (code − zeroPoint) · scale}, the default zero point {@code 2^(bits−1)}:
 * bit for bit what {@link QuantizedMatrix#dequantize()} gives.
 */
public final class GatherLayout {
  private GatherLayout() {}

  /** Whether the kernel gathers a table in {@code f}: 4 or 8 bits. */
  public static boolean supports(QuantFormat f) {
    return f.bits() == 4 || f.bits() == 8;
  }

  /** {@code [n, blocks·blobBytes]}. */
  public static long[] codesShape(long n, long k, QuantFormat f) {
    return new long[] {n, (long) f.blocks(k) * f.blobBytes()};
  }

  /** {@code [n, blocks]}. */
  public static long[] scalesShape(long n, long k, QuantFormat f) {
    return new long[] {n, f.blocks(k)};
  }

  /** {@code [n, ⌈blocks·bits/8⌉]}. */
  public static long[] zeroPointsShape(long n, long k, QuantFormat f) {
    return new long[] {n, f.zeroPointBytesPerRow(k)};
  }

  /** Whether the zero points must be repacked for the kernel (4-bit, an odd number of blocks). */
  public static boolean repacksZeroPoints(long k, QuantFormat f) {
    return f.zeroPoints() && f.bits() == 4 && (f.blocks(k) & 1) == 1;
  }

  /**
   * The zero points of a {@code [n, k]} table as the kernel reads them, from MatMulNBits' packing
   * {@code perRow} ({@code n·⌈blocks·bits/8⌉} bytes): {@code perRow} itself where the packings
   * agree, else a direct copy packed as one run ({@link #repacksZeroPoints}), zero-padded to the
   * same length.
   */
  public static ByteBuffer zeroPoints(ByteBuffer perRow, int n, long k, QuantFormat f) {
    if (!repacksZeroPoints(k, f)) {
      return perRow;
    }
    int blocks = f.blocks(k);
    int rowBytes = f.zeroPointBytesPerRow(k);
    ByteBuffer src = perRow.duplicate();
    int base = src.position();
    ByteBuffer out = ByteBuffer.allocateDirect(n * rowBytes).order(ByteOrder.nativeOrder());
    for (int r = 0; r < n; r++) {
      for (int b = 0; b < blocks; b++) {
        int zp = ((src.get(base + r * rowBytes + b / 2) & 0xff) >>> ((b & 1) * 4)) & 0xf;
        long nibble = (long) r * blocks + b;
        int at = (int) (nibble >>> 1);
        out.put(at, (byte) (out.get(at) | (zp << ((nibble & 1) * 4))));
      }
    }
    return out;
  }
}
