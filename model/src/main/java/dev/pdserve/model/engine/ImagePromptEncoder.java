package dev.pdserve.model.engine;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.VisionConfig;
import dev.pdserve.model.vision.EncoderCache;
import dev.pdserve.model.vision.ImageDecoder;
import dev.pdserve.model.vision.ImageDigest;
import dev.pdserve.model.vision.ImagePreprocessor;
import dev.pdserve.model.vision.PromptImage;
import dev.pdserve.model.vision.VisionEncoder;
import java.util.ArrayList;
import java.util.List;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * A node's way from a prompt's token ids and images to the inputs of its prefill: the images
 * checked against the ids ({@link PromptImages}), decoded and preprocessed, each taken from the
 * {@link EncoderCache} by digest or run through the {@link VisionEncoder} (and cached), and the
 * rows placed over the image placeholders ({@link PrefillInputs}). Each image's encoder time is
 * logged (DEBUG, in the caller's log context) and reported to the {@link Observer}. Thread-safe;
 * the encoder, the cache and the runner stay their owner's.
 */
public final class ImagePromptEncoder {
  private static final Logger LOG = LogManager.getLogger(ImagePromptEncoder.class);

  /** What the encoder reports; called on the encoding thread, must be cheap. */
  public interface Observer {
    Observer NONE = new Observer() {};

    /** One image went through the vision encoder in {@code nanos} (an encoder-cache miss). */
    default void imageEncoded(long nanos) {}

    /** One image's rows came from the encoder cache. */
    default void encoderCacheHit() {}
  }

  private final ModelConfig cfg;
  private final ModelRunner runner;
  private final VisionEncoder encoder;
  private final EncoderCache cache;
  private final ImagePreprocessor preprocessor;
  private final Observer observer;

  public ImagePromptEncoder(
      ModelRunner runner, VisionEncoder encoder, EncoderCache cache, Observer observer) {
    this.cfg = runner.config();
    this.runner = runner;
    this.encoder = encoder;
    this.cache = cache;
    this.observer = observer;
    this.preprocessor =
        new ImagePreprocessor(encoder.vision(), new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS));
  }

  public VisionConfig vision() {
    return encoder.vision();
  }

  public EncoderCache cache() {
    return cache;
  }

  /**
   * Checks the images against the prompt (cheap: no pixel decoded).
   *
   * @throws dev.pdserve.model.vision.InvalidImageException naming the image that does not fit
   */
  public PromptImages check(int[] ids, List<PromptImage> images) {
    return PromptImages.check(ids, images, encoder.vision());
  }

  /**
   * Decodes, preprocesses and encodes (or finds in the cache) every image, and builds the prompt's
   * prefill inputs.
   *
   * @throws dev.pdserve.model.vision.InvalidImageException naming an image that cannot be decoded
   *     or whose grid is not the one given
   */
  public PrefillInputs inputs(PromptImages images) {
    RenderedPrompt prompt = images.render(preprocessor);
    List<ImageDigest> digests = images.digests();
    List<float[]> rows = new ArrayList<>(digests.size());
    for (int k = 0; k < digests.size(); k++) {
      rows.add(rows(k, digests.get(k), prompt.images().get(k)));
    }
    return PrefillInputs.of(prompt, cfg, runner, rows);
  }

  private float[] rows(int k, ImageDigest digest, ImageSpan span) {
    float[] cached = cache.get(digest);
    if (cached != null) {
      observer.encoderCacheHit();
      LOG.debug("image {} ({}): encoder cache hit", k, digest);
      return cached;
    }
    long t0 = System.nanoTime();
    float[] rows = encoder.encode(span.image());
    long nanos = System.nanoTime() - t0;
    cache.put(digest, rows);
    observer.imageEncoded(nanos);
    LOG.debug(
        "image {} ({}): {}x{} merged patches ({} patches) encoded in {} ms",
        k,
        digest,
        span.gridH(),
        span.gridW(),
        span.image().patchCount(),
        String.format("%.1f", nanos / 1e6));
    return rows;
  }
}
