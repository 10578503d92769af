package dev.pdserve.model.config;

/** The ViT encoder's shape (reported by {@code model info}; the encoder itself is later work). */
public record VisionConfig(
    int depth,
    int width,
    int heads,
    int patchSize,
    int spatialMerge,
    int temporalMerge,
    int mlpRatio) {
  public long parameters(int lmHidden) {
    long block = 4L * width * width + 2L * width * (long) width * mlpRatio + 4L * width;
    long merged = (long) width * spatialMerge * spatialMerge;
    long patchEmbed = 3L * patchSize * patchSize * width;
    long resampler = merged * merged + merged * lmHidden;
    return depth * block + patchEmbed + resampler;
  }
}
