package dev.pdserve.model.tokenizer;

/**
 * One turn of a conversation. {@code role} is {@code system}, {@code user} or {@code assistant};
 * {@link ChatTemplate#render} validates it, with the message's position in the error.
 */
public record ChatMessage(String role, String content) {
  public static final String SYSTEM = "system";
  public static final String USER = "user";
  public static final String ASSISTANT = "assistant";

  public static ChatMessage system(String content) {
    return new ChatMessage(SYSTEM, content);
  }

  public static ChatMessage user(String content) {
    return new ChatMessage(USER, content);
  }

  public static ChatMessage assistant(String content) {
    return new ChatMessage(ASSISTANT, content);
  }
}
