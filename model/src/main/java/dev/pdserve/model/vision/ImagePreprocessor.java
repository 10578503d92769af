package dev.pdserve.model.vision;

import dev.pdserve.model.config.VisionConfig;

/**
 * The ERNIE-4.5-VL image preprocessing: decode to RGB, smart-resize ({@link SmartResize}) with
 * Pillow's bicubic ({@link BicubicResampler}), rescale by 1/255, normalise per channel with the
 * config's mean and standard deviation, and cut into patches in merge-window order ({@link
 * PatchedImage}). Normalisation is computed in double and rounded to float once. Stateless and
 * thread-safe.
 */
public final class ImagePreprocessor {
  private final VisionConfig vision;
  private final ImageDecoder decoder;

  public ImagePreprocessor(VisionConfig vision, ImageDecoder decoder) {
    this.vision = vision;
    this.decoder = decoder;
  }

  public VisionConfig vision() {
    return vision;
  }

  /**
   * @throws InvalidImageException if the image cannot be decoded or has an unusable shape
   */
  public PatchedImage preprocess(EncodedImage image) {
    return preprocess(decoder.decode(image));
  }

  public PatchedImage preprocess(RgbImage image) {
    ImageSize target = SmartResize.target(new ImageSize(image.height(), image.width()), vision);
    RgbImage resized = BicubicResampler.resize(image, target.width(), target.height());
    return patchify(resized);
  }

  /** Normalises and patchifies an image whose sides are already multiples of patch × merge. */
  PatchedImage patchify(RgbImage img) {
    int p = vision.patchSize();
    int m = vision.spatialMerge();
    if (img.height() % vision.resizeFactor() != 0 || img.width() % vision.resizeFactor() != 0) {
      throw new IllegalArgumentException(
          "a "
              + img.width()
              + "x"
              + img.height()
              + " image is not in whole merged patches of "
              + vision.resizeFactor());
    }
    int gridH = img.height() / p;
    int gridW = img.width() / p;
    int channels = vision.inChannels();
    double[] mean = new double[channels];
    double[] std = new double[channels];
    for (int c = 0; c < channels; c++) {
      mean[c] = vision.imageMean().get(c);
      std[c] = vision.imageStd().get(c);
    }
    int values = vision.patchValues();
    float[] out = new float[gridH * gridW * values];
    int i = 0;
    for (int wy = 0; wy < gridH / m; wy++) {
      for (int wx = 0; wx < gridW / m; wx++) {
        for (int my = 0; my < m; my++) {
          for (int mx = 0; mx < m; mx++) {
            int top = (wy * m + my) * p;
            int left = (wx * m + mx) * p;
            for (int c = 0; c < channels; c++) {
              for (int py = 0; py < p; py++) {
                for (int px = 0; px < p; px++) {
                  double v = img.value(left + px, top + py, c) / 255.0;
                  out[i++] = (float) ((v - mean[c]) / std[c]);
                }
              }
            }
          }
        }
      }
    }
    return new PatchedImage(gridH, gridW, m, values, out);
  }
}
