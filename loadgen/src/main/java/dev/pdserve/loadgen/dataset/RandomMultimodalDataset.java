package dev.pdserve.loadgen.dataset;

import java.util.ArrayList;
import java.util.List;

/**
 * vLLM's {@code random-mm}: the {@code random} dataset's text prompts (sent as text: the images
 * need a chat message), each with {@code --images-per-request} generated PNG images of {@code
 * --image-size} ({@link RandomImages}). A request's text and images are a function of the seed and
 * its index.
 */
public final class RandomMultimodalDataset implements Dataset {
  private final RandomDataset text;
  private final ImageOptions images;
  private final RandomImages generator;

  public RandomMultimodalDataset(DatasetConfig cfg, TokenSpace tokens, long seed, int maxContext) {
    this.images = cfg.images();
    int imageTokens = images.perRequest() * images.tokensPerImageAtMost();
    if (maxContext > 0 && imageTokens >= maxContext) {
      throw new IllegalArgumentException(
          "--images-per-request "
              + images.perRequest()
              + " of --image-size "
              + images.size()
              + " take up to "
              + imageTokens
              + " prompt tokens, beyond the model's context of "
              + maxContext
              + " tokens");
    }
    try {
      this.text =
          new RandomDataset(
              cfg, tokens, PromptForm.TEXT, seed, maxContext > 0 ? maxContext - imageTokens : 0);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(
          e.getMessage() + " once the images' up to " + imageTokens + " tokens are taken", e);
    }
    this.generator = new RandomImages(seed, images.width(), images.height());
  }

  @Override
  public BenchRequest get(long index) {
    BenchRequest t = text.get(index);
    List<BenchImage> out = new ArrayList<>(images.perRequest());
    for (int k = 0; k < images.perRequest(); k++) {
      out.add(generator.image(index, k));
    }
    return new BenchRequest(index, null, t.promptText(), t.promptTokens(), t.outputTokens(), out);
  }

  public ImageOptions images() {
    return images;
  }

  @Override
  public String describe() {
    return "random-mm("
        + text.describe().substring("random(".length(), text.describe().length() - 1)
        + ", images_per_request="
        + images.perRequest()
        + ", image_size="
        + images.size()
        + ")";
  }
}
