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
