package dev.pdserve.model.vision;

import dev.pdserve.model.config.VisionConfig;

/**
 * The ViT's 2-D rotary angles. A head of width hd rotates its halves together (dims d and d + hd/2,
 * "rotate half"); the first hd/4 angles are the patch's row times the frequencies {@code
 * theta^(-4j/hd)}, the next hd/4 its column times the same frequencies. Row and column are the
 * patch's position in the patch grid before merging. Computed in double, rounded to float once.
 */
public final class VisionRope {
  private final double[] invFreq;

  public VisionRope(VisionConfig v) {
    int quarter = v.headDim() / 4;
    invFreq = new double[quarter];
    for (int j = 0; j < quarter; j++) {
      invFreq[j] = 1.0 / StrictMath.pow(v.ropeTheta(), (2.0 * j) / (v.headDim() / 2.0));
    }
  }

  /** Angles per patch, {@code [patches, hd/2]}: {cos, sin}. */
  public float[][] angles(PatchedImage image) {
    int n = image.patchCount();
    int half = invFreq.length * 2;
    float[] cos = new float[n * half];
    float[] sin = new float[n * half];
    for (int i = 0; i < n; i++) {
      int row = image.patchRow(i);
      int col = image.patchCol(i);
      for (int j = 0; j < invFreq.length; j++) {
        double a = row * invFreq[j];
        double b = col * invFreq[j];
        cos[i * half + j] = (float) StrictMath.cos(a);
        sin[i * half + j] = (float) StrictMath.sin(a);
        cos[i * half + invFreq.length + j] = (float) StrictMath.cos(b);
        sin[i * half + invFreq.length + j] = (float) StrictMath.sin(b);
      }
    }
    return new float[][] {cos, sin};
  }
}
