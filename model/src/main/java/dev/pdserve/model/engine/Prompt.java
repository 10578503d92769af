package dev.pdserve.model.engine;

import dev.pdserve.model.tokenizer.ChatMessage;
import java.util.List;

/** What a request asks the model to continue: chat messages, raw text, or token ids. */
public sealed interface Prompt {
  /** Chat messages, rendered with the ERNIE chat template. */
  record Messages(List<ChatMessage> messages) implements Prompt {
    public Messages {
      messages = List.copyOf(messages);
    }
  }

  /** Raw text, tokenized as is. */
  record Text(String text) implements Prompt {}

  /** Token ids, used as given. */
  record Tokens(int[] ids) implements Prompt {}

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
