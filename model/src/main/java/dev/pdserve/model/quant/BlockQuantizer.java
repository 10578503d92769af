package dev.pdserve.model.quant;

import java.nio.FloatBuffer;
import java.util.stream.IntStream;

/**
 * Block-wise round-to-nearest quantization with a per-block range search: for each block of K
 * values of a row, candidate ranges (the block's full range shrunk by {@link #CLIP_RATIOS}) are
 * tried and the one with the least squared error after rounding is kept. Deterministic: the same
 * weights give the same codes on every machine.
 *
 * <p>Symmetric (no zero points): {@code scale = absmax·c / (2^(bits−1) − 1)}, code = {@code
 * round(w/scale) + 2^(bits−1)} clamped. Asymmetric: {@code [lo, hi] = [min(min·c, 0), max(max·c,
 * 0)]}, {@code scale = (hi − lo) / (2^bits − 1)}, {@code zp = round(−lo/scale)}, code = {@code
 * round(w/scale) + zp} clamped.
 */
public final class BlockQuantizer {
  /** Range shrink factors tried per block (1 = plain round-to-nearest over the full range). */
  static final float[] CLIP_RATIOS = {1f, 0.95f, 0.9f, 0.85f, 0.8f, 0.75f, 0.7f, 0.6f, 0.5f};

  private static final float[] PLAIN = {1f};

  private BlockQuantizer() {}

  /** {@code w} ({@code [n, k]} row-major) quantized in {@code f} with the range search. */
  public static QuantizedMatrix quantize(FloatBuffer w, int n, int k, QuantFormat f) {
    return quantize(w, n, k, f, true);
  }

  /**
   * {@code w} quantized in {@code f}; {@code search} false is plain round-to-nearest over each
   * block's full range.
   */
  public static QuantizedMatrix quantize(
      FloatBuffer w, int n, int k, QuantFormat f, boolean search) {
    Out out = Out.of(w, n, k, f);
    quantizeRows(w, k, f, search ? CLIP_RATIOS : PLAIN, 0, n, out);
    return out.matrix(n, k, f);
  }

  /**
   * {@code w} quantized in {@code f} with the range search, its rows spread over the common
   * fork-join pool: the same bytes as {@link #quantize(FloatBuffer, int, int, QuantFormat)} (each
   * row is quantized on its own), for callers that quantize one large matrix at a time.
   */
  public static QuantizedMatrix quantizeInParallel(FloatBuffer w, int n, int k, QuantFormat f) {
    Out out = Out.of(w, n, k, f);
    int chunk = Math.max(1, (1 << 16) / Math.max(1, k)); // ~64 Ki values per task
    int tasks = (n + chunk - 1) / chunk;
    IntStream.range(0, tasks)
        .parallel()
        .forEach(
            t -> quantizeRows(w, k, f, CLIP_RATIOS, t * chunk, Math.min(n, (t + 1) * chunk), out));
    return out.matrix(n, k, f);
  }

  /** The arrays a matrix is quantized into. */
  private record Out(byte[] codes, float[] scales, byte[] zps) {
    static Out of(FloatBuffer w, int n, int k, QuantFormat f) {
      if ((long) n * k != w.capacity()) {
        throw new IllegalArgumentException(
            "a ["
                + n
                + ", "
                + k
                + "] weight needs "
                + (long) n * k
                + " values, got "
                + w.capacity());
      }
      int blocks = f.blocks(k);
      return new Out(
          new byte[Math.multiplyExact(n * blocks, f.blobBytes())],
          new float[n * blocks],
          new byte[n * f.zeroPointBytesPerRow(k)]);
    }

    QuantizedMatrix matrix(int n, int k, QuantFormat f) {
      return new QuantizedMatrix(n, k, f, codes, scales, zps);
    }
  }

  /** Quantizes rows {@code [from, to)} of {@code w} into their places in {@code out}. */
  private static void quantizeRows(
      FloatBuffer w, int k, QuantFormat f, float[] ratios, int from, int to, Out out) {
    int bs = f.blockSize();
    int blocks = f.blocks(k);
    byte[] codes = out.codes();
    float[] scales = out.scales();
    byte[] zps = out.zps();
    float[] block = new float[bs];
    int[] q = new int[bs];
    int[] bestQ = new int[bs];
    for (int r = from; r < to; r++) {
      for (int b = 0; b < blocks; b++) {
        int start = b * bs;
        int len = Math.min(bs, k - start);
        java.util.Arrays.fill(block, 0f);
        for (int j = 0; j < len; j++) {
          block[j] = w.get(r * k + start + j);
        }
        float bestErr = Float.POSITIVE_INFINITY;
        float bestScale = 0f;
        int bestZp = f.zeroPoints() ? 0 : f.defaultZeroPoint();
        for (float c : ratios) {
          float scale;
          int zp;
          if (f.zeroPoints()) {
            float lo = 0f;
            float hi = 0f;
            for (int j = 0; j < len; j++) {
              lo = Math.min(lo, block[j]);
              hi = Math.max(hi, block[j]);
            }
            lo *= c;
            hi *= c;
            scale = (hi - lo) / f.maxCode();
            zp = scale == 0f ? 0 : clamp(Math.round(-lo / scale), 0, f.maxCode());
          } else {
            float amax = 0f;
            for (int j = 0; j < len; j++) {
              amax = Math.max(amax, Math.abs(block[j]));
            }
            scale = amax * c / (f.defaultZeroPoint() - 1);
            zp = f.defaultZeroPoint();
          }
          float err = 0f;
          for (int j = 0; j < len; j++) {
            int code =
                scale == 0f ? zp : clamp((int) Math.rint(block[j] / scale) + zp, 0, f.maxCode());
            q[j] = code;
            float d = (code - zp) * scale - block[j];
            err += d * d;
          }
          if (err < bestErr) {
            bestErr = err;
            bestScale = scale;
            bestZp = zp;
            System.arraycopy(q, 0, bestQ, 0, len);
          }
        }
        for (int j = len; j < bs; j++) {
          bestQ[j] = bestZp; // padding beyond K: exact zeros
        }
        scales[r * blocks + b] = bestScale;
        int base = (r * blocks + b) * f.blobBytes();
        for (int j = 0; j < bs; j++) {
          int bit = j * f.bits();
          codes[base + bit / 8] |= (byte) (bestQ[j] << (bit % 8));
        }
        if (f.zeroPoints()) {
          int bit = b * f.bits();
          zps[r * f.zeroPointBytesPerRow(k) + bit / 8] |= (byte) (bestZp << (bit % 8));
        }
      }
    }
  }

  private static int clamp(int v, int lo, int hi) {
    return Math.max(lo, Math.min(hi, v));
  }
}
