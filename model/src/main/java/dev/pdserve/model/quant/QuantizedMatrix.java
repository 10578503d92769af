package dev.pdserve.model.quant;

/**
 * A {@code [n, k]} weight in a {@link QuantFormat}, in the arrays MatMulNBits reads: {@code codes}
 * {@code [n, blocks, blobBytes]}, {@code scales} {@code [n·blocks]}, {@code zeroPoints} {@code
 * [n·zeroPointBytesPerRow]} (empty without zero points).
 */
public record QuantizedMatrix(
    int n, int k, QuantFormat format, byte[] codes, float[] scales, byte[] zeroPoints) {

  /** Code of value {@code col} (0..k-1) of row {@code row}. */
  public int code(int row, int col) {
    int bits = format.bits();
    int blocks = format.blocks(k);
    int blk = col / format.blockSize();
    int j = col % format.blockSize();
    int byteIdx = (row * blocks + blk) * format.blobBytes() + j * bits / 8;
    int shift = (j * bits) % 8;
    return ((codes[byteIdx] & 0xff) >>> shift) & format.maxCode();
  }

  /** Zero point of block {@code blk} of row {@code row}. */
  public int zeroPoint(int row, int blk) {
    if (!format.zeroPoints()) {
      return format.defaultZeroPoint();
    }
    int bits = format.bits();
    int idx = row * format.zeroPointBytesPerRow(k) + blk * bits / 8;
    int shift = (blk * bits) % 8;
    return ((zeroPoints[idx] & 0xff) >>> shift) & format.maxCode();
  }

  /** The weight as its quantized values say, row-major {@code [n, k]}. */
  public float[] dequantize() {
    float[] out = new float[n * k];
    int blocks = format.blocks(k);
    for (int r = 0; r < n; r++) {
      for (int c = 0; c < k; c++) {
        int blk = c / format.blockSize();
        out[r * k + c] = (code(r, c) - zeroPoint(r, blk)) * scales[r * blocks + blk];
      }
    }
    return out;
  }

  /** Bytes held: codes, scales and zero points. */
  public long bytes() {
    return codes.length + 4L * scales.length + zeroPoints.length;
  }
}
