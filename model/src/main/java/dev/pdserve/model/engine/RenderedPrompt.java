package dev.pdserve.model.engine;

import java.util.List;

/**
 * A prompt as token ids, with each image's placeholders expanded, and where the images are.
 *
 * @param ids the prompt's token ids
 * @param images the images in prompt order; empty for a text prompt
 */
public record RenderedPrompt(int[] ids, List<ImageSpan> images) {
  public RenderedPrompt {
    images = List.copyOf(images);
  }

  public boolean hasImages() {
    return !images.isEmpty();
  }

  /** 3-D rotary positions of the prompt's tokens and the decode delta. */
  public PromptPositions positions() {
    return PromptPositions.of(ids.length, images);
  }
}
