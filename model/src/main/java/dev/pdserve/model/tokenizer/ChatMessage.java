package dev.pdserve.model.tokenizer;

import dev.pdserve.model.vision.EncodedImage;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * One turn of a conversation. {@code role} is {@code system}, {@code user} or {@code assistant};
 * {@code parts} is its content: text, and (in system and user messages) images. {@link
 * ChatTemplate#render} validates both, with the message's position in the error.
 */
public record ChatMessage(String role, List<ContentPart> parts) {
  public static final String SYSTEM = "system";
  public static final String USER = "user";
  public static final String ASSISTANT = "assistant";

  public ChatMessage {
    // Keep null parts (and null elements) so that the template can name them instead of an NPE.
    parts = parts == null ? null : Collections.unmodifiableList(new ArrayList<>(parts));
  }

  /** A text-only message; {@code content} null is reported by the template. */
  public ChatMessage(String role, String content) {
    this(role, content == null ? null : List.of(new ContentPart.Text(content)));
  }

  /** The text parts, concatenated (images contribute nothing); null when the content is null. */
  public String content() {
    if (parts == null) {
      return null;
    }
    StringBuilder sb = new StringBuilder();
    for (ContentPart p : parts) {
      if (p instanceof ContentPart.Text t && t.text() != null) {
        sb.append(t.text());
      }
    }
    return sb.toString();
  }

  /** The images of this message, in order. */
  public List<EncodedImage> images() {
    List<EncodedImage> out = new ArrayList<>();
    if (parts != null) {
      for (ContentPart p : parts) {
        if (p instanceof ContentPart.Image i) {
          out.add(i.image());
        }
      }
    }
    return out;
  }

  public static ChatMessage system(String content) {
    return new ChatMessage(SYSTEM, content);
  }

  public static ChatMessage user(String content) {
    return new ChatMessage(USER, content);
  }

  /** A user message of text and image parts. */
  public static ChatMessage userParts(ContentPart... parts) {
    return new ChatMessage(USER, List.of(parts));
  }

  public static ChatMessage assistant(String content) {
    return new ChatMessage(ASSISTANT, content);
  }
}
