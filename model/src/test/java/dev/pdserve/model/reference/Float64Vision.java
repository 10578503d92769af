package dev.pdserve.model.reference;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.VisionConfig;
import dev.pdserve.model.weights.FloatTensor;
import dev.pdserve.model.weights.WeightSource;
import java.util.HashMap;
import java.util.Map;

/**
 * An independent, plain-Java float64 implementation of ERNIE-4.5-VL's vision encoder (DESIGN.md
 * §1): the ViT (linear patch embedding, pre-LayerNorm blocks with biased qkv and projection, 2-D
 * rotate-half rotary on each patch's (row, column), full attention, quick-GELU MLP, final
 * LayerNorm) and the resampler (2×2 merge, spatial MLP with exact GELU and LayerNorm, temporal MLP
 * on copies of each row, Linear to the LM width and RMSNorm). Written from the math, one patch at a
 * time, with weights widened to double and read by their checkpoint names.
 */
public final class Float64Vision {
  private final ModelConfig cfg;
  private final VisionConfig v;
  private final WeightSource weights;
  private final Map<String, double[][]> matrices = new HashMap<>();
  private final Map<String, double[]> vectors = new HashMap<>();

  public Float64Vision(ModelConfig cfg, WeightSource weights) {
    this.cfg = cfg;
    this.v = cfg.vision().orElseThrow();
    this.weights = weights;
  }

  /**
   * The (row, column) of each patch of a {@code gridH × gridW} patch grid, in the order the
   * preprocessing emits patches: merge windows row-major, patches row-major inside a window.
   */
  public int[][] patchPositions(int gridH, int gridW) {
    int m = v.spatialMerge();
    int[][] out = new int[gridH * gridW][];
    int i = 0;
    for (int wy = 0; wy < gridH / m; wy++) {
      for (int wx = 0; wx < gridW / m; wx++) {
        for (int dy = 0; dy < m; dy++) {
          for (int dx = 0; dx < m; dx++) {
            out[i++] = new int[] {wy * m + dy, wx * m + dx};
          }
        }
      }
    }
    return out;
  }

  /** The ViT's output for patches at the given (row, column) positions: {@code [n][width]}. */
  public double[][] features(double[][] patches, int[][] positions) {
    int n = patches.length;
    int w = v.width();
    int heads = v.heads();
    int hd = v.headDim();
    double[][] x = new double[n][];
    double[][] embed = matrix("vision_model.patch_embed.proj.weight");
    for (int i = 0; i < n; i++) {
      x[i] = Math64.matVec(embed, patches[i]);
    }
    for (int b = 0; b < v.depth(); b++) {
      String p = "vision_model.blocks." + b + ".";
      double[][] q = new double[n][];
      double[][] k = new double[n][];
      double[][] val = new double[n][];
      for (int i = 0; i < n; i++) {
        double[] xn =
            Math64.layerNorm(
                x[i], vector(p + "norm1.weight"), vector(p + "norm1.bias"), v.layerNormEps());
        double[] qkv =
            Math64.linear(matrix(p + "attn.qkv.weight"), vector(p + "attn.qkv.bias"), xn);
        q[i] = Math64.slice(qkv, 0, w);
        k[i] = Math64.slice(qkv, w, w);
        val[i] = Math64.slice(qkv, 2 * w, w);
        for (int h = 0; h < heads; h++) {
          rotateHalf(q[i], h * hd, hd, positions[i]);
          rotateHalf(k[i], h * hd, hd, positions[i]);
        }
      }
      double scale = 1.0 / Math.sqrt(hd);
      double[][] next = new double[n][];
      for (int i = 0; i < n; i++) {
        double[] ctx = new double[w];
        for (int h = 0; h < heads; h++) {
          double[] scores = new double[n];
          for (int j = 0; j < n; j++) {
            double s = 0;
            for (int d = 0; d < hd; d++) {
              s += q[i][h * hd + d] * k[j][h * hd + d];
            }
            scores[j] = s * scale;
          }
          double[] prob = Math64.softmax(scores);
          for (int j = 0; j < n; j++) {
            for (int d = 0; d < hd; d++) {
              ctx[h * hd + d] += prob[j] * val[j][h * hd + d];
            }
          }
        }
        double[] h1 =
            Math64.add(
                x[i],
                Math64.linear(matrix(p + "attn.proj.weight"), vector(p + "attn.proj.bias"), ctx));
        double[] hn =
            Math64.layerNorm(
                h1, vector(p + "norm2.weight"), vector(p + "norm2.bias"), v.layerNormEps());
        double[] a = Math64.linear(matrix(p + "mlp.fc1.weight"), vector(p + "mlp.fc1.bias"), hn);
        for (int d = 0; d < a.length; d++) {
          a[d] = Math64.quickGelu(a[d]);
        }
        next[i] =
            Math64.add(
                h1, Math64.linear(matrix(p + "mlp.fc2.weight"), vector(p + "mlp.fc2.bias"), a));
      }
      x = next;
    }
    double[][] out = new double[n][];
    for (int i = 0; i < n; i++) {
      out[i] =
          Math64.layerNorm(
              x[i],
              vector("vision_model.ln.weight"),
              vector("vision_model.ln.bias"),
              v.layerNormEps());
    }
    return out;
  }

  /**
   * Rotate-half rotary on one head at {@code offset}: for d < hd/2, (x[d], x[d + hd/2]) rotate by
   * row · f_d for d < hd/4 and column · f_(d − hd/4) above, {@code f_j = theta^(−2j/(hd/2))}.
   */
  private void rotateHalf(double[] x, int offset, int hd, int[] rowCol) {
    int half = hd / 2;
    int quarter = hd / 4;
    for (int d = 0; d < half; d++) {
      int j = d < quarter ? d : d - quarter;
      double pos = d < quarter ? rowCol[0] : rowCol[1];
      double angle = pos / Math.pow(v.ropeTheta(), 2.0 * j / half);
      double a = x[offset + d];
      double b = x[offset + d + half];
      x[offset + d] = a * Math.cos(angle) - b * Math.sin(angle);
      x[offset + d + half] = b * Math.cos(angle) + a * Math.sin(angle);
    }
  }

  /** The resampler: ViT features in merge-window order to LM rows {@code [n/merge²][hidden]}. */
  public double[][] resample(double[][] features) {
    int group = v.spatialMerge() * v.spatialMerge();
    int rows = features.length / group;
    int w = v.width();
    double[][] out = new double[rows][];
    String r = "model.resampler_model.";
    for (int i = 0; i < rows; i++) {
      double[] merged = new double[w * group];
      for (int g = 0; g < group; g++) {
        System.arraycopy(features[i * group + g], 0, merged, g * w, w);
      }
      double[] x = mlp(r + "spatial_linear.", merged);
      if (v.temporalMlp()) {
        double[] frames = new double[x.length * v.temporalMerge()];
        for (int f = 0; f < v.temporalMerge(); f++) {
          System.arraycopy(x, 0, frames, f * x.length, x.length);
        }
        x = mlp(r + "temporal_linear.", frames);
      }
      double[] y = Math64.linear(matrix(r + "mlp.weight"), vector(r + "mlp.bias"), x);
      out[i] = Math64.rmsNorm(y, vector(r + "after_norm.weight"), cfg.rmsNormEps());
    }
    return out;
  }

  private double[] mlp(String prefix, double[] x) {
    double[] h = Math64.linear(matrix(prefix + "0.weight"), vector(prefix + "0.bias"), x);
    for (int d = 0; d < h.length; d++) {
      h[d] = Math64.gelu(h[d]);
    }
    h = Math64.linear(matrix(prefix + "2.weight"), vector(prefix + "2.bias"), h);
    return Math64.layerNorm(
        h, vector(prefix + "3.weight"), vector(prefix + "3.bias"), v.layerNormEps());
  }

  /** Patches and grid to LM rows. */
  public double[][] encode(double[][] patches, int gridH, int gridW) {
    return resample(features(patches, patchPositions(gridH, gridW)));
  }

  private double[][] matrix(String name) {
    return matrices.computeIfAbsent(
        name,
        n -> {
          FloatTensor t = tensor(n);
          int rows = (int) t.shape()[0];
          int cols = (int) t.shape()[1];
          double[][] m = new double[rows][cols];
          for (int a = 0; a < rows; a++) {
            for (int c = 0; c < cols; c++) {
              m[a][c] = t.get(a * cols + c);
            }
          }
          return m;
        });
  }

  private double[] vector(String name) {
    return vectors.computeIfAbsent(
        name,
        n -> {
          FloatTensor t = tensor(n);
          double[] out = new double[(int) t.elements()];
          for (int i = 0; i < out.length; i++) {
            out[i] = t.get(i);
          }
          return out;
        });
  }

  private FloatTensor tensor(String name) {
    return weights
        .find(name)
        .orElseThrow(
            () -> new IllegalArgumentException(weights.describe() + " has no tensor " + name));
  }
}
