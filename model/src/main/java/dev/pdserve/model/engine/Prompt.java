package dev.pdserve.model.engine;

import dev.pdserve.model.tokenizer.ChatMessage;
import dev.pdserve.model.vision.EncodedImage;
import java.util.ArrayList;
import java.util.List;

/**
 * What a request asks the model to continue: chat messages, raw text, or token ids, each possibly
 * with images. In chat messages images are content parts; in text and token-id prompts each {@code
 * <|IMAGE_START|><|IMAGE_END|>} pair is a slot that the next image of {@code images} fills.
 */
public sealed interface Prompt {
  /** The prompt's images, in the order they appear. */
  List<EncodedImage> images();

  default boolean hasImages() {
    return !images().isEmpty();
  }

  /** Chat messages, rendered with the ERNIE chat template. */
  record Messages(List<ChatMessage> messages) implements Prompt {
    public Messages {
      messages = List.copyOf(messages);
    }

    @Override
    public List<EncodedImage> images() {
      List<EncodedImage> out = new ArrayList<>();
      messages.forEach(m -> out.addAll(m.images()));
      return out;
    }
  }

  /** Raw text, tokenized as is; its image slots take {@code images} in order. */
  record Text(String text, List<EncodedImage> images) implements Prompt {
    public Text {
      images = images == null ? List.of() : List.copyOf(images);
    }

    public Text(String text) {
      this(text, List.of());
    }
  }

  /** Token ids, used as given; their image slots take {@code images} in order. */
  record Tokens(int[] ids, List<EncodedImage> images) implements Prompt {
    public Tokens {
      images = images == null ? List.of() : List.copyOf(images);
    }

    public Tokens(int[] ids) {
      this(ids, List.of());
    }
  }

  static Prompt text(String text) {
    return new Text(text);
  }

  static Prompt user(String content) {
    return new Messages(List.of(ChatMessage.user(content)));
  }

  static Prompt tokens(int... ids) {
    return new Tokens(ids.clone());
  }
}
