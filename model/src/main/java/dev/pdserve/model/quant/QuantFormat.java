package dev.pdserve.model.quant;

/**
 * How one weight matrix {@code [N, K]} (stored {@code [out, in]}) is quantized for ONNX Runtime's
 * {@code com.microsoft.MatMulNBits}: along K in blocks of {@code blockSize} values, each block with
 * one fp32 scale and, with {@code zeroPoints}, one {@code bits}-bit zero point (asymmetric);
 * without them the zero point is MatMulNBits' default {@code 2^(bits-1)} (symmetric).
 *
 * <p>Layout (what MatMulNBits reads): codes {@code uint8 [N, blocks, blockSize·bits/8]}, packed low
 * bits first along K; scales {@code float [N·blocks]}; zero points {@code uint8
 * [N·⌈blocks·bits/8⌉]}, packed low bits first, each row starting on a byte. K is padded to whole
 * blocks with zeros. A value is {@code (code − zeroPoint) · scale}.
 *
 * <p>{@code compute} is what MatMulNBits computes in ({@link QuantCompute#accuracyLevel()}); it
 * does not change the layout, the {@link #tag()} nor the tensor names.
 */
public record QuantFormat(int bits, int blockSize, boolean zeroPoints, QuantCompute compute) {
  /** A format computed in fp32 ({@code accuracy_level} 0). */
  public QuantFormat(int bits, int blockSize, boolean zeroPoints) {
    this(bits, blockSize, zeroPoints, QuantCompute.FP32);
  }

  public QuantFormat {
    java.util.Objects.requireNonNull(compute, "compute");
    if (bits != 2 && bits != 4 && bits != 8) {
      throw new IllegalArgumentException("bits must be 2, 4 or 8, got " + bits);
    }
    if (!WeightQuantization.isValidBlockSize(blockSize)) {
      throw new IllegalArgumentException(WeightQuantization.BLOCK_MUST_BE + ", got " + blockSize);
    }
  }

  /** Blocks along a K of {@code k} values. */
  public int blocks(long k) {
    return (int) ((k + blockSize - 1) / blockSize);
  }

  /** Bytes of one block's codes. */
  public int blobBytes() {
    return blockSize * bits / 8;
  }

  /** Bytes of one row's zero points (0 without zero points). */
  public int zeroPointBytesPerRow(long k) {
    return zeroPoints ? (blocks(k) * bits + 7) / 8 : 0;
  }

  /** The zero point a code is taken relative to when none is stored. */
  public int defaultZeroPoint() {
    return 1 << (bits - 1);
  }

  /** Largest code. */
  public int maxCode() {
    return (1 << bits) - 1;
  }

  /** Bytes of a {@code [n, k]} weight in this format: codes, scales and zero points. */
  public long bytes(long k, long n) {
    long blocks = blocks(k);
    return n * (blocks * blobBytes() + blocks * 4L + zeroPointBytesPerRow(k));
  }

  /** The same layout computed in {@code c}. */
  public QuantFormat withCompute(QuantCompute c) {
    return new QuantFormat(bits, blockSize, zeroPoints, c);
  }

  /** Short name used in derived tensor names, e.g. {@code q4b64z} (the compute is not in it). */
  public String tag() {
    return "q" + bits + "b" + blockSize + (zeroPoints ? "z" : "");
  }

  /** The format of a {@link #tag()}, computed in fp32. */
  public static QuantFormat parseTag(String tag) {
    if (!tag.startsWith("q") || !tag.contains("b")) {
      throw new IllegalArgumentException("not a quantization tag: " + tag);
    }
    boolean z = tag.endsWith("z");
    String body = tag.substring(1, z ? tag.length() - 1 : tag.length());
    int cut = body.indexOf('b');
    return new QuantFormat(
        Integer.parseInt(body.substring(0, cut)), Integer.parseInt(body.substring(cut + 1)), z);
  }
}
