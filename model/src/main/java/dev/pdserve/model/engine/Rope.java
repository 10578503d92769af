package dev.pdserve.model.engine;

import dev.pdserve.model.config.ModelConfig;

/**
 * Rotary angles for interleaved pairs: pair i of a head rotates by {@code position ·
 * theta^(-2i/headDim)}. Computed in double and rounded to float once, identically on every node.
 *
 * <p>With 3-D positions (t, h, w) (ERNIE-4.5-VL's image tokens), each pair takes its position from
 * one axis: of the {@code headDim/2} pairs, the last {@code freq_allocation} are temporal and the
 * ones before alternate height (even pairs) and width (odd pairs). A text token sits at (p, p, p),
 * where every pair sees p: exactly the 1-D angles.
 */
public final class Rope {
  /** Axis indices of a 3-D position. */
  public static final int T = 0;

  public static final int H = 1;
  public static final int W = 2;

  private final double[] invFreq;
  private final int[] axis;

  public Rope(ModelConfig cfg) {
    int half = cfg.headDim() / 2;
    invFreq = new double[half];
    axis = new int[half];
    int temporalFrom = Math.max(0, half - cfg.freqAllocation());
    for (int i = 0; i < half; i++) {
      invFreq[i] = StrictMath.pow(cfg.ropeTheta(), -2.0 * i / cfg.headDim());
      axis[i] = i >= temporalFrom ? T : (i % 2 == 0 ? H : W);
    }
  }

  public int half() {
    return invFreq.length;
  }

  /** The axis (T, H or W) pair {@code i} takes its position from. */
  public int axis(int i) {
    return axis[i];
  }

  /**
   * Writes cos and sin of {@code position} into row {@code row} of {@code [rows, headDim/2]}
   * arrays.
   */
  public void fill(long position, float[] cos, float[] sin, int row) {
    int o = row * invFreq.length;
    for (int i = 0; i < invFreq.length; i++) {
      double a = position * invFreq[i];
      cos[o + i] = (float) StrictMath.cos(a);
      sin[o + i] = (float) StrictMath.sin(a);
    }
  }

  /** Writes cos and sin of the 3-D position (t, h, w) into row {@code row}. */
  public void fill(long t, long h, long w, float[] cos, float[] sin, int row) {
    int o = row * invFreq.length;
    for (int i = 0; i < invFreq.length; i++) {
      long position = axis[i] == T ? t : axis[i] == H ? h : w;
      double a = position * invFreq[i];
      cos[o + i] = (float) StrictMath.cos(a);
      sin[o + i] = (float) StrictMath.sin(a);
    }
  }
}
