package dev.pdserve.model.engine;

import dev.pdserve.model.config.ModelConfig;

/**
 * Rotary angles for interleaved pairs: pair i of a head rotates by {@code position ·
 * theta^(-2i/headDim)}. Computed in double and rounded to float once, identically on every node.
 */
public final class Rope {
  private final double[] invFreq;

  public Rope(ModelConfig cfg) {
    int half = cfg.headDim() / 2;
    invFreq = new double[half];
    for (int i = 0; i < half; i++) {
      invFreq[i] = StrictMath.pow(cfg.ropeTheta(), -2.0 * i / cfg.headDim());
    }
  }

  public int half() {
    return invFreq.length;
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
}
