package dev.pdserve.model.vision;

/**
 * Bicubic resizing of 8-bit RGB images, computed exactly as Pillow's {@code Image.resize(size,
 * Image.BICUBIC)} computes it (its {@code Resample.c}), which is what the released ERNIE-4.5-VL
 * image processor calls. The JDK's bicubic interpolation differs (it does not widen the kernel when
 * shrinking), so this is written out:
 *
 * <ul>
 *   <li>a separable convolution, horizontal pass first, with the Keys cubic kernel (a = −0.5) of
 *       support 2, widened by the scale factor when shrinking (antialiasing);
 *   <li>output pixel i samples around source coordinate {@code (i + 0.5) · scale}; the weights of
 *       each output pixel are normalised to sum to 1, then turned into 22-bit fixed point;
 *   <li>each pass rounds to 8 bits and clips to [0, 255] (the horizontal pass's output is stored as
 *       8-bit samples before the vertical pass reads it).
 * </ul>
 *
 * A side that keeps its size is not resampled. Tests compare the output with Pillow's pixel for
 * pixel.
 */
public final class BicubicResampler {
  private static final int PRECISION_BITS = 32 - 8 - 2;
  private static final double SUPPORT = 2.0;

  private BicubicResampler() {}

  /** {@code in} resized to {@code width} × {@code height}. */
  public static RgbImage resize(RgbImage in, int width, int height) {
    if (width <= 0 || height <= 0) {
      throw new IllegalArgumentException("cannot resize to " + width + "x" + height);
    }
    byte[] data = in.rgb();
    int w = in.width();
    int h = in.height();
    if (width != w) {
      data = horizontal(data, w, h, coefficients(w, width), width);
      w = width;
    }
    if (height != h) {
      data = vertical(data, w, h, coefficients(h, height), height);
      h = height;
    }
    return new RgbImage(w, h, data == in.rgb() ? data.clone() : data);
  }

  /** Per output pixel: first source index, count, and fixed-point weights ({@code ksize} each). */
  private record Coefficients(int ksize, int[] first, int[] count, int[] weights) {}

  static double cubic(double x) {
    double a = -0.5;
    if (x < 0.0) {
      x = -x;
    }
    if (x < 1.0) {
      return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    }
    if (x < 2.0) {
      return (((x - 5) * x + 8) * x - 4) * a;
    }
    return 0.0;
  }

  private static Coefficients coefficients(int inSize, int outSize) {
    double scale = (double) inSize / outSize;
    double filterScale = Math.max(scale, 1.0);
    double support = SUPPORT * filterScale;
    int ksize = (int) Math.ceil(support) * 2 + 1;
    int[] first = new int[outSize];
    int[] count = new int[outSize];
    int[] weights = new int[outSize * ksize];
    double[] k = new double[ksize];
    for (int xx = 0; xx < outSize; xx++) {
      double center = (xx + 0.5) * scale;
      double ss = 1.0 / filterScale;
      int xmin = (int) (center - support + 0.5);
      if (xmin < 0) {
        xmin = 0;
      }
      int xmax = (int) (center + support + 0.5);
      if (xmax > inSize) {
        xmax = inSize;
      }
      xmax -= xmin;
      double ww = 0.0;
      for (int x = 0; x < xmax; x++) {
        double wgt = cubic((x + xmin - center + 0.5) * ss);
        k[x] = wgt;
        ww += wgt;
      }
      for (int x = 0; x < xmax; x++) {
        if (ww != 0.0) {
          k[x] /= ww;
        }
        double v = k[x] * (1 << PRECISION_BITS);
        weights[xx * ksize + x] = (int) (v < 0 ? -0.5 + v : 0.5 + v);
      }
      first[xx] = xmin;
      count[xx] = xmax;
    }
    return new Coefficients(ksize, first, count, weights);
  }

  private static byte[] horizontal(byte[] src, int w, int h, Coefficients c, int outW) {
    byte[] out = new byte[outW * h * 3];
    for (int y = 0; y < h; y++) {
      int row = y * w * 3;
      for (int xx = 0; xx < outW; xx++) {
        int ko = xx * c.ksize();
        int x0 = c.first()[xx];
        int n = c.count()[xx];
        int s0 = 1 << (PRECISION_BITS - 1);
        int s1 = s0;
        int s2 = s0;
        for (int x = 0; x < n; x++) {
          int p = row + (x0 + x) * 3;
          int kw = c.weights()[ko + x];
          s0 += (src[p] & 0xff) * kw;
          s1 += (src[p + 1] & 0xff) * kw;
          s2 += (src[p + 2] & 0xff) * kw;
        }
        int o = (y * outW + xx) * 3;
        out[o] = clip8(s0);
        out[o + 1] = clip8(s1);
        out[o + 2] = clip8(s2);
      }
    }
    return out;
  }

  private static byte[] vertical(byte[] src, int w, int h, Coefficients c, int outH) {
    byte[] out = new byte[w * outH * 3];
    for (int yy = 0; yy < outH; yy++) {
      int ko = yy * c.ksize();
      int y0 = c.first()[yy];
      int n = c.count()[yy];
      for (int x = 0; x < w; x++) {
        int s0 = 1 << (PRECISION_BITS - 1);
        int s1 = s0;
        int s2 = s0;
        for (int y = 0; y < n; y++) {
          int p = ((y0 + y) * w + x) * 3;
          int kw = c.weights()[ko + y];
          s0 += (src[p] & 0xff) * kw;
          s1 += (src[p + 1] & 0xff) * kw;
          s2 += (src[p + 2] & 0xff) * kw;
        }
        int o = (yy * w + x) * 3;
        out[o] = clip8(s0);
        out[o + 1] = clip8(s1);
        out[o + 2] = clip8(s2);
      }
    }
    return out;
  }

  private static byte clip8(int v) {
    if (v >= (1 << PRECISION_BITS << 8)) {
      return (byte) 255;
    }
    if (v <= 0) {
      return 0;
    }
    return (byte) (v >> PRECISION_BITS);
  }
}
