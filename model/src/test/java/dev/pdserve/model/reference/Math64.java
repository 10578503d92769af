package dev.pdserve.model.reference;

/**
 * The elementary float64 operations of the reference model, each written out in the most direct
 * form. Every function returns a fresh array and never modifies its inputs.
 */
final class Math64 {
  private Math64() {}

  /** {@code y = W·x} for a weight stored {@code [out, in]}. */
  static double[] matVec(double[][] w, double[] x) {
    double[] y = new double[w.length];
    for (int o = 0; o < w.length; o++) {
      if (w[o].length != x.length) {
        throw new IllegalArgumentException(
            "matVec: row has " + w[o].length + " columns, vector has " + x.length);
      }
      y[o] = dot(w[o], x);
    }
    return y;
  }

  static double dot(double[] a, double[] b) {
    double s = 0;
    for (int i = 0; i < a.length; i++) {
      s += a[i] * b[i];
    }
    return s;
  }

  static double[] add(double[] a, double[] b) {
    double[] y = new double[a.length];
    for (int i = 0; i < a.length; i++) {
      y[i] = a[i] + b[i];
    }
    return y;
  }

  /** {@code x / sqrt(mean(x²) + eps) * w}. */
  static double[] rmsNorm(double[] x, double[] w, double eps) {
    double meanSquare = 0;
    for (double v : x) {
      meanSquare += v * v;
    }
    meanSquare /= x.length;
    double inv = 1.0 / Math.sqrt(meanSquare + eps);
    double[] y = new double[x.length];
    for (int i = 0; i < x.length; i++) {
      y[i] = x[i] * inv * w[i];
    }
    return y;
  }

  static double silu(double z) {
    return z / (1.0 + Math.exp(-z));
  }

  /** Numerically stable softmax (subtracts the maximum first). */
  static double[] softmax(double[] z) {
    double max = Double.NEGATIVE_INFINITY;
    for (double v : z) {
      max = Math.max(max, v);
    }
    double[] p = new double[z.length];
    double sum = 0;
    for (int i = 0; i < z.length; i++) {
      p[i] = Math.exp(z[i] - max);
      sum += p[i];
    }
    for (int i = 0; i < z.length; i++) {
      p[i] /= sum;
    }
    return p;
  }

  /** SwiGLU MLP: {@code down(silu(gate(x)) ⊙ up(x))}. */
  static double[] swiglu(double[][] gate, double[][] up, double[][] down, double[] x) {
    double[] g = matVec(gate, x);
    double[] u = matVec(up, x);
    double[] a = new double[g.length];
    for (int i = 0; i < g.length; i++) {
      a[i] = silu(g[i]) * u[i];
    }
    return matVec(down, a);
  }

  /**
   * RoPE on one head vector with interleaved pairs: for {@code i < headDim/2}, the pair {@code
   * (x[2i], x[2i+1])} rotates by {@code position · theta^(-2i/headDim)}.
   */
  static double[] ropeInterleaved(double[] x, double position, double theta) {
    int headDim = x.length;
    double[] y = new double[headDim];
    for (int i = 0; i < headDim / 2; i++) {
      double invFreq = Math.pow(theta, -2.0 * i / headDim);
      double angle = position * invFreq;
      double cos = Math.cos(angle);
      double sin = Math.sin(angle);
      double a = x[2 * i];
      double b = x[2 * i + 1];
      y[2 * i] = a * cos - b * sin;
      y[2 * i + 1] = b * cos + a * sin;
    }
    return y;
  }

  /**
   * ERNIE-4.5-VL's 3-D RoPE on one head vector, interleaved pairs: with {@code half = headDim/2},
   * pair i rotates by {@code pos · theta^(-2i/headDim)} where pos is the temporal position {@code
   * thw[0]} for the last {@code freqAllocation} pairs, and for the pairs before them the height
   * {@code thw[1]} (i even) or the width {@code thw[2]} (i odd).
   */
  static double[] ropeInterleaved3d(double[] x, int[] thw, double theta, int freqAllocation) {
    int headDim = x.length;
    int half = headDim / 2;
    double[] y = new double[headDim];
    for (int i = 0; i < half; i++) {
      double position;
      if (i >= half - freqAllocation) {
        position = thw[0];
      } else if (i % 2 == 0) {
        position = thw[1];
      } else {
        position = thw[2];
      }
      double angle = position * Math.pow(theta, -2.0 * i / headDim);
      double a = x[2 * i];
      double b = x[2 * i + 1];
      y[2 * i] = a * Math.cos(angle) - b * Math.sin(angle);
      y[2 * i + 1] = b * Math.cos(angle) + a * Math.sin(angle);
    }
    return y;
  }

  /** LayerNorm: {@code (x − mean) / sqrt(var + eps) · w + b}, population variance. */
  static double[] layerNorm(double[] x, double[] w, double[] b, double eps) {
    double mean = 0;
    for (double v : x) {
      mean += v;
    }
    mean /= x.length;
    double var = 0;
    for (double v : x) {
      var += (v - mean) * (v - mean);
    }
    var /= x.length;
    double inv = 1.0 / Math.sqrt(var + eps);
    double[] y = new double[x.length];
    for (int i = 0; i < x.length; i++) {
      y[i] = (x[i] - mean) * inv * w[i] + b[i];
    }
    return y;
  }

  /** {@code y = W·x + b} for a weight stored {@code [out, in]}. */
  static double[] linear(double[][] w, double[] b, double[] x) {
    return add(matVec(w, x), b);
  }

  /** Exact GELU: {@code x · Φ(x) = x · ½(1 + erf(x/√2))}. */
  static double gelu(double x) {
    return 0.5 * x * (1 + erf(x / Math.sqrt(2)));
  }

  /** Quick GELU: {@code x · sigmoid(1.702 x)}. */
  static double quickGelu(double x) {
    return x / (1 + Math.exp(-1.702 * x));
  }

  /**
   * The error function to double precision: its Maclaurin series below |x| = 3, above it 1 −
   * erfc(x) with erfc from its continued fraction.
   */
  static double erf(double x) {
    double ax = Math.abs(x);
    if (ax < 3) {
      double term = x;
      double sum = x;
      for (int n = 1; n < 200; n++) {
        term *= -x * x / n;
        double add = term / (2 * n + 1);
        sum += add;
        if (Math.abs(add) < 1e-17 * Math.abs(sum)) {
          break;
        }
      }
      return 2 / Math.sqrt(Math.PI) * sum;
    }
    double f = ax;
    for (int k = 80; k >= 1; k--) {
      f = ax + (k / 2.0) / f;
    }
    double erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
    return Math.signum(x) * (1 - erfc);
  }

  /** Index of the largest value; ties go to the lowest index. */
  static int argmax(double[] v) {
    int best = 0;
    for (int i = 1; i < v.length; i++) {
      if (v[i] > v[best]) {
        best = i;
      }
    }
    return best;
  }

  /** {@code x[offset .. offset+len)} as a new array. */
  static double[] slice(double[] x, int offset, int len) {
    double[] y = new double[len];
    System.arraycopy(x, offset, y, 0, len);
    return y;
  }
}
