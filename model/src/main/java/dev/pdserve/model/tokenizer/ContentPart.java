package dev.pdserve.model.tokenizer;

import dev.pdserve.model.vision.EncodedImage;

/** One part of a chat message's content: text, or an image. */
public sealed interface ContentPart {
  /** Text, rendered as it is. */
  record Text(String text) implements ContentPart {}

  /** An image, rendered as {@code Picture N:} and the image's tokens. */
  record Image(EncodedImage image) implements ContentPart {}

  static ContentPart text(String text) {
    return new Text(text);
  }

  static ContentPart image(EncodedImage image) {
    return new Image(image);
  }
}
