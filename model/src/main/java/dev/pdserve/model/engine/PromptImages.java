package dev.pdserve.model.engine;

import dev.pdserve.model.config.ImageTokenIds;
import dev.pdserve.model.config.VisionConfig;
import dev.pdserve.model.vision.ImageDigest;
import dev.pdserve.model.vision.ImagePreprocessor;
import dev.pdserve.model.vision.InvalidImageException;
import dev.pdserve.model.vision.PatchedImage;
import dev.pdserve.model.vision.PromptImage;
import java.util.ArrayList;
import java.util.List;

/**
 * A prompt's token ids and its images as a node receives them, checked against each other before
 * the node uses either: a node never trusts a caller's geometry. {@link #check} (cheap: no pixel is
 * decoded) holds each image's placeholders to where the image says they are — its start token just
 * before, exactly {@code gridH × gridW} placeholders, its end token just after, images in prompt
 * order — and the prompt's placeholder runs to one per image, and computes every image's {@link
 * ImageDigest} under this node's settings (a digest the caller gave must equal it). {@link #render}
 * then decodes and preprocesses each image and refuses one whose merged grid is not the one given.
 *
 * <p>Every refusal is an {@link InvalidImageException} whose message starts with {@code images[k]:}
 * naming the image (for INVALID_ARGUMENT at the edge).
 */
public final class PromptImages {
  private final int[] ids;
  private final List<PromptImage> images;
  private final VisionConfig vision;

  private PromptImages(int[] ids, List<PromptImage> images, VisionConfig vision) {
    this.ids = ids;
    this.images = images;
    this.vision = vision;
  }

  /**
   * Checks {@code images} against the prompt {@code ids} for a model with {@code vision}.
   *
   * @return the images with this node's digests
   * @throws InvalidImageException naming the first image (or the prompt) that does not fit
   */
  public static PromptImages check(int[] ids, List<PromptImage> images, VisionConfig vision) {
    ImageTokenIds t = vision.tokens();
    List<PromptImage> out = new ArrayList<>(images.size());
    long previousEnd = -1;
    for (int k = 0; k < images.size(); k++) {
      PromptImage img = images.get(k);
      String name = "images[" + k + "]";
      if (img.gridH() < 1 || img.gridW() < 1) {
        throw new InvalidImageException(
            name + ": grid " + img.gridH() + "x" + img.gridW() + " must be at least 1x1");
      }
      int start = img.placeholderStart();
      long end = img.end();
      if (start < 1 || end >= ids.length) {
        throw new InvalidImageException(
            name
                + ": its "
                + img.tokens()
                + " placeholders from token "
                + start
                + " with its start and end tokens do not fit the prompt's "
                + ids.length
                + " tokens");
      }
      if (start <= previousEnd) {
        throw new InvalidImageException(
            name
                + ": placeholders from token "
                + start
                + " overlap or precede images["
                + (k - 1)
                + "], which ends at token "
                + previousEnd
                + "; give the images in prompt order");
      }
      if (ids[start - 1] != t.start() || ids[(int) end] != t.end()) {
        throw new InvalidImageException(
            name
                + ": expected "
                + ImageTokenIds.START_TOKEN
                + " at token "
                + (start - 1)
                + " and "
                + ImageTokenIds.END_TOKEN
                + " at token "
                + end
                + " around its "
                + img.tokens()
                + " placeholders, found ids "
                + ids[start - 1]
                + " and "
                + ids[(int) end]);
      }
      for (int i = start; i < end; i++) {
        if (ids[i] != t.placeholder()) {
          throw new InvalidImageException(
              name
                  + ": token "
                  + i
                  + " is id "
                  + ids[i]
                  + ", not a placeholder, inside the image's "
                  + img.gridH()
                  + "x"
                  + img.gridW()
                  + " placeholders from token "
                  + start);
        }
      }
      ImageDigest mine = ImageDigest.of(img.image(), vision);
      if (img.digest() != null && !img.digest().equals(mine)) {
        throw new InvalidImageException(
            name
                + ": digest "
                + img.digest().hex()
                + " does not match the image's bytes under this node's preprocessing settings ("
                + mine.hex()
                + "); the sender's image settings differ from this node's");
      }
      out.add(img.withDigest(mine));
      previousEnd = end;
    }
    int runs = placeholderRuns(ids, t.placeholder());
    if (runs != images.size()) {
      throw new InvalidImageException(
          "images: the prompt has "
              + runs
              + " run"
              + (runs == 1 ? "" : "s")
              + " of image placeholders but "
              + images.size()
              + " image"
              + (images.size() == 1 ? " was" : "s were")
              + " given; give one image per run");
    }
    return new PromptImages(ids.clone(), List.copyOf(out), vision);
  }

  private static int placeholderRuns(int[] ids, int placeholder) {
    int runs = 0;
    for (int i = 0; i < ids.length; i++) {
      if (ids[i] == placeholder && (i == 0 || ids[i - 1] != placeholder)) {
        runs++;
      }
    }
    return runs;
  }

  /** The images, in prompt order, each with this node's digest. */
  public List<PromptImage> images() {
    return images;
  }

  /** The images' digests, in prompt order. */
  public List<ImageDigest> digests() {
    return images.stream().map(PromptImage::digest).toList();
  }

  public boolean isEmpty() {
    return images.isEmpty();
  }

  /**
   * Decodes and preprocesses every image: the prompt as the model takes it.
   *
   * @param preprocessor of this node's vision config (the one the digests were computed with)
   * @throws InvalidImageException naming an image that cannot be decoded or whose merged grid is
   *     not the one given
   */
  public RenderedPrompt render(ImagePreprocessor preprocessor) {
    if (!preprocessor.vision().equals(vision)) {
      throw new IllegalArgumentException(
          "the preprocessor's vision settings are not those the images were checked with");
    }
    List<ImageSpan> spans = new ArrayList<>(images.size());
    for (int k = 0; k < images.size(); k++) {
      PromptImage img = images.get(k);
      PatchedImage patched;
      try {
        patched = preprocessor.preprocess(img.image());
      } catch (InvalidImageException e) {
        throw new InvalidImageException("images[" + k + "]: " + e.getMessage(), e);
      }
      if (patched.mergedH() != img.gridH() || patched.mergedW() != img.gridW()) {
        throw new InvalidImageException(
            "images["
                + k
                + "]: the image preprocesses to a "
                + patched.mergedH()
                + "x"
                + patched.mergedW()
                + " merged grid, the request says "
                + img.gridH()
                + "x"
                + img.gridW());
      }
      spans.add(new ImageSpan(img.placeholderStart(), patched));
    }
    return new RenderedPrompt(ids.clone(), spans);
  }
}
