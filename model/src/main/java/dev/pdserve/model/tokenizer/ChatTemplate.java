package dev.pdserve.model.tokenizer;

import dev.pdserve.model.config.ImageTokenIds;
import java.util.List;

/**
 * ERNIE-4.5's chat format, mirroring the Jinja {@code chat_template} ERNIE publishes in its {@code
 * tokenizer_config.json} (the thinking-capable variant, with {@code enable_thinking}):
 *
 * <pre>
 * &lt;|begin_of_sentence|&gt;                once, at the start
 * {system content}\n                      a system message (only as the first message)
 * User: {content}\n                       a user message
 * Picture N:&lt;|IMAGE_START|&gt;&lt;|IMAGE_END|&gt;   an image part of a system or user message (N counts
 *                                         pictures across the conversation, from 1)
 * Assistant: {content}&lt;|end_of_sentence|&gt;  an assistant message
 * Assistant:                              the generation prompt, then, when thinking is disabled,
 * &lt;think&gt;\n\n&lt;/think&gt;\n\n                an empty thought so the model answers directly
 * </pre>
 *
 * With thinking enabled the prompt ends at {@code "Assistant: "} and the model opens its own {@code
 * <think>}. The rendered string contains special-token strings; {@link Tokenizer#encode} maps them
 * to their ids. Stateless and thread-safe.
 */
public final class ChatTemplate {
  public static final String BEGIN_OF_SENTENCE = "<|begin_of_sentence|>";
  public static final String END_OF_SENTENCE = "<|end_of_sentence|>";
  public static final String EMPTY_THOUGHT = "<think>\n\n</think>\n\n";

  /**
   * Where an image goes in a rendered prompt: its start and end tokens, which the prompt renderer
   * fills with the image's placeholder tokens.
   */
  public static final String IMAGE_SLOT = ImageTokenIds.START_TOKEN + ImageTokenIds.END_TOKEN;

  private static final ChatTemplate ERNIE = new ChatTemplate();

  private ChatTemplate() {}

  /** The ERNIE-4.5 template. */
  public static ChatTemplate ernie() {
    return ERNIE;
  }

  /**
   * Renders {@code messages} as a prompt.
   *
   * @param addGenerationPrompt end with {@code "Assistant: "} so the model writes the next turn
   * @param enableThinking with a generation prompt: let the model think first; when false an empty
   *     {@code <think>} block follows the prompt (ignored without a generation prompt)
   * @throws IllegalArgumentException naming the offending message when a role is unknown, a system
   *     message is not first, a message or its content is null, or there are no messages
   */
  public String render(
      List<ChatMessage> messages, boolean addGenerationPrompt, boolean enableThinking) {
    validate(messages);
    StringBuilder out = new StringBuilder(BEGIN_OF_SENTENCE);
    int pictures = 0;
    for (ChatMessage m : messages) {
      switch (m.role()) {
        case ChatMessage.SYSTEM -> {
          pictures = content(out, m, pictures);
          out.append('\n');
        }
        case ChatMessage.USER -> {
          out.append("User: ");
          pictures = content(out, m, pictures);
          out.append('\n');
        }
        case ChatMessage.ASSISTANT ->
            out.append("Assistant: ").append(m.content()).append(END_OF_SENTENCE);
        default -> throw new AssertionError("validated role " + m.role());
      }
    }
    if (addGenerationPrompt) {
      out.append("Assistant: ");
      if (!enableThinking) {
        out.append(EMPTY_THOUGHT);
      }
    }
    return out.toString();
  }

  /**
   * Appends a message's parts: text as it is, each image as {@code Picture N:} and {@link
   * #IMAGE_SLOT}, numbering pictures across the conversation. Returns the pictures so far.
   */
  private static int content(StringBuilder out, ChatMessage m, int pictures) {
    for (ContentPart p : m.parts()) {
      if (p instanceof ContentPart.Text t) {
        out.append(t.text());
      } else {
        pictures++;
        out.append("Picture ").append(pictures).append(':').append(IMAGE_SLOT);
      }
    }
    return pictures;
  }

  private static void validate(List<ChatMessage> messages) {
    if (messages == null || messages.isEmpty()) {
      throw new IllegalArgumentException("messages must contain at least one message");
    }
    for (int i = 0; i < messages.size(); i++) {
      ChatMessage m = messages.get(i);
      if (m == null) {
        throw new IllegalArgumentException("messages[" + i + "] must not be null");
      }
      String role = m.role();
      if (!ChatMessage.SYSTEM.equals(role)
          && !ChatMessage.USER.equals(role)
          && !ChatMessage.ASSISTANT.equals(role)) {
        throw new IllegalArgumentException(
            "messages["
                + i
                + "].role must be one of system, user, assistant; got "
                + (role == null ? "null" : "'" + role + "'"));
      }
      if (ChatMessage.SYSTEM.equals(role) && i != 0) {
        throw new IllegalArgumentException(
            "messages["
                + i
                + "].role is 'system', but a system message is only allowed as the first message");
      }
      if (m.parts() == null) {
        throw new IllegalArgumentException("messages[" + i + "].content must not be null");
      }
      for (int j = 0; j < m.parts().size(); j++) {
        ContentPart p = m.parts().get(j);
        if (p == null
            || p instanceof ContentPart.Text t && t.text() == null
            || p instanceof ContentPart.Image img && img.image() == null) {
          throw new IllegalArgumentException(
              "messages[" + i + "].content[" + j + "] must not be null");
        }
        if (p instanceof ContentPart.Image && ChatMessage.ASSISTANT.equals(role)) {
          throw new IllegalArgumentException(
              "messages["
                  + i
                  + "].content["
                  + j
                  + "] is an image, but only system and user messages may hold images");
        }
      }
    }
  }
}
