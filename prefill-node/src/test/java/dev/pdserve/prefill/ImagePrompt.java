package dev.pdserve.prefill;

import dev.pdserve.model.engine.ImageSpan;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.engine.RenderedPrompt;
import dev.pdserve.model.tokenizer.ChatTemplate;
import dev.pdserve.model.vision.EncodedImage;
import dev.pdserve.model.vision.ImageDigest;
import dev.pdserve.model.vision.PromptImage;
import java.util.ArrayList;
import java.util.List;

/**
 * A prompt with images as a router sends it to a prefill node: rendered by the reference engine's
 * renderer (its ids hold each image's placeholders), each image with its digest, where its
 * placeholders start and its merged grid.
 *
 * @param source the prompt as a client gave it (what the reference engine generates from)
 * @param rendered the reference renderer's ids and image spans
 * @param images the images as the wire carries them
 */
record ImagePrompt(Prompt source, RenderedPrompt rendered, List<PromptImage> images) {
  /** Where each image goes in {@code text}: the chat template's image slot. */
  static final String IMAGE = ChatTemplate.IMAGE_SLOT;

  /** {@code text} with an {@link #IMAGE} slot for each of {@code images}, in order. */
  static ImagePrompt of(ReferenceEngine reference, String text, EncodedImage... images) {
    Prompt source = new Prompt.Text(text, List.of(images));
    RenderedPrompt rendered = reference.renderer().renderWithImages(source, false);
    List<PromptImage> wire = new ArrayList<>();
    for (int k = 0; k < images.length; k++) {
      ImageSpan span = rendered.images().get(k);
      wire.add(
          new PromptImage(
              images[k],
              "image/png",
              ImageDigest.of(images[k], reference.config().vision().orElseThrow()),
              span.start(),
              span.gridH(),
              span.gridW()));
    }
    return new ImagePrompt(source, rendered, List.copyOf(wire));
  }

  int[] ids() {
    return rendered.ids();
  }
}
