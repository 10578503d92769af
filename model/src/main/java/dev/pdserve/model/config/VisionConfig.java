package dev.pdserve.model.config;

import java.util.List;

/**
 * The vision side of an ERNIE-4.5-VL model: the ViT encoder, the resampler that merges its patches
 * into language-model rows, the image preprocessing, and the image token ids.
 *
 * @param depth ViT blocks ({@code vision_config.depth})
 * @param width ViT width ({@code vision_config.embed_dim} / {@code hidden_size}; the resampler's
 *     {@code pixel_hidden_size})
 * @param heads attention heads per block ({@code vision_config.num_heads})
 * @param mlpWidth the block MLP's hidden width ({@code intermediate_size}, or {@code mlp_ratio} ×
 *     width)
 * @param patchSize square patch side in pixels ({@code vision_config.patch_size})
 * @param spatialMerge patches merged per side into one LM row ({@code spatial_conv_size})
 * @param temporalMerge frames merged into one row ({@code temporal_conv_size}); a still image is
 *     repeated this many times into the temporal MLP
 * @param inChannels colour channels of a patch ({@code vision_config.in_channels}, 3 = RGB)
 * @param layerNormEps epsilon of the ViT's and the resampler's LayerNorms
 * @param ropeTheta base of the ViT's 2-D rotary embedding
 * @param temporalMlp whether the resampler has its temporal MLP ({@code use_temporal_conv})
 * @param minPixels smart resize scales images up to at least this many pixels
 * @param maxPixels smart resize scales images down to at most this many pixels
 * @param imageMean per-channel mean subtracted after rescaling to [0, 1]
 * @param imageStd per-channel standard deviation divided by after the mean
 * @param tokens the ids framing an image in a prompt
 */
public record VisionConfig(
    int depth,
    int width,
    int heads,
    int mlpWidth,
    int patchSize,
    int spatialMerge,
    int temporalMerge,
    int inChannels,
    double layerNormEps,
    double ropeTheta,
    boolean temporalMlp,
    long minPixels,
    long maxPixels,
    List<Double> imageMean,
    List<Double> imageStd,
    ImageTokenIds tokens) {

  /** OpenAI CLIP's channel means, the ERNIE-4.5-VL image processor's default. */
  public static final List<Double> CLIP_MEAN = List.of(0.48145466, 0.4578275, 0.40821073);

  /** OpenAI CLIP's channel standard deviations. */
  public static final List<Double> CLIP_STD = List.of(0.26862954, 0.26130258, 0.27577711);

  /** The released image processor's bounds: at least 56² pixels, at most 28² · 6177. */
  public static final long DEFAULT_MIN_PIXELS = 56L * 56;

  public static final long DEFAULT_MAX_PIXELS = 28L * 28 * 6177;

  public VisionConfig {
    imageMean = List.copyOf(imageMean);
    imageStd = List.copyOf(imageStd);
    require(depth > 0, "vision_config.depth", "must be > 0, got " + depth);
    require(width > 0, "vision_config.embed_dim", "must be > 0, got " + width);
    require(
        heads > 0 && width % heads == 0,
        "vision_config.num_heads",
        "must divide embed_dim (" + width + "), got " + heads);
    require(
        (width / heads) % 4 == 0,
        "vision_config.num_heads",
        "the head width embed_dim / num_heads must be a multiple of 4 for the 2-D rotary"
            + " embedding, got "
            + width / heads);
    require(mlpWidth > 0, "vision_config.intermediate_size", "must be > 0, got " + mlpWidth);
    require(patchSize > 0, "vision_config.patch_size", "must be > 0, got " + patchSize);
    require(spatialMerge > 0, "spatial_conv_size", "must be > 0, got " + spatialMerge);
    require(temporalMerge > 0, "temporal_conv_size", "must be > 0, got " + temporalMerge);
    require(inChannels == 3, "vision_config.in_channels", "must be 3 (RGB), got " + inChannels);
    require(layerNormEps > 0, "vision_config.layer_norm_eps", "must be > 0, got " + layerNormEps);
    require(ropeTheta > 0, "vision_config.rope_theta", "must be > 0, got " + ropeTheta);
    long factor = (long) patchSize * spatialMerge;
    require(
        minPixels >= factor * factor,
        "min_pixels",
        "must be at least one merged patch (" + factor * factor + "), got " + minPixels);
    require(
        maxPixels >= minPixels,
        "max_pixels",
        "must be >= min_pixels (" + minPixels + "), got " + maxPixels);
    require(
        imageMean.size() == inChannels,
        "image_mean",
        "needs one value per channel (" + inChannels + "), got " + imageMean);
    require(
        imageStd.size() == inChannels && imageStd.stream().allMatch(s -> s > 0),
        "image_std",
        "needs one positive value per channel (" + inChannels + "), got " + imageStd);
    require(tokens != null, "im_patch_id", "image token ids are required");
  }

  private static void require(boolean ok, String key, String msg) {
    if (!ok) {
      throw new ConfigException(key + ": " + msg);
    }
  }

  /** Width of one attention head. */
  public int headDim() {
    return width / heads;
  }

  /** Values of one flattened patch: channels × patch × patch (588 for RGB 14 × 14). */
  public int patchValues() {
    return inChannels * patchSize * patchSize;
  }

  /** Image sides are multiples of this: patch × spatial merge (28). */
  public int resizeFactor() {
    return patchSize * spatialMerge;
  }

  /** Patches merged into one language-model row (spatial merge², 4). */
  public int patchesPerRow() {
    return spatialMerge * spatialMerge;
  }

  /** Width of a merged row before the resampler's MLPs: width × spatial merge². */
  public int mergedWidth() {
    return width * patchesPerRow();
  }

  /** Input width of the temporal MLP: merged width × temporal merge. */
  public int temporalWidth() {
    return mergedWidth() * temporalMerge;
  }

  /** The same vision config with other token ids. */
  public VisionConfig withTokens(ImageTokenIds ids) {
    return new VisionConfig(
        depth,
        width,
        heads,
        mlpWidth,
        patchSize,
        spatialMerge,
        temporalMerge,
        inChannels,
        layerNormEps,
        ropeTheta,
        temporalMlp,
        minPixels,
        maxPixels,
        imageMean,
        imageStd,
        ids);
  }

  /** Parameters of the ViT (patch embedding, blocks, final LayerNorm) and the resampler. */
  public long parameters(int lmHidden) {
    long w = width;
    long block = 2 * w + (3 * w * w + 3 * w) + (w * w + w) + 2 * w;
    block += (mlpWidth * w + mlpWidth) + (w * mlpWidth + w);
    long tower = (long) patchValues() * w + depth * block + 2 * w;
    long m = mergedWidth();
    long spatial = 2 * (m * m + m) + 2 * m;
    long temporal = temporalMlp ? (temporalWidth() * m + m) + (m * m + m) + 2 * m : 0;
    long out = m * lmHidden + lmHidden + lmHidden;
    return tower + spatial + temporal + out;
  }
}
