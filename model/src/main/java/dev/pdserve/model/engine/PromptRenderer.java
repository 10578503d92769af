package dev.pdserve.model.engine;

import dev.pdserve.model.sampling.InvalidRequestException;
import dev.pdserve.model.tokenizer.ChatTemplate;
import dev.pdserve.model.tokenizer.Tokenizer;

/**
 * Turns a {@link Prompt} into token ids: the chat template for messages, the tokenizer for text.
 */
public final class PromptRenderer {
  private final Tokenizer tokenizer;
  private final ChatTemplate template;

  public PromptRenderer(Tokenizer tokenizer, ChatTemplate template) {
    this.tokenizer = tokenizer;
    this.template = template;
  }

  public Tokenizer tokenizer() {
    return tokenizer;
  }

  /** The prompt's token ids; never empty. */
  public int[] render(Prompt prompt, boolean enableThinking) {
    int[] ids;
    if (prompt instanceof Prompt.Messages m) {
      if (m.messages().isEmpty()) {
        throw new InvalidRequestException(
            "messages", "messages is empty; give at least one message");
      }
      try {
        ids = tokenizer.encode(template.render(m.messages(), true, enableThinking));
      } catch (InvalidRequestException e) {
        throw e;
      } catch (IllegalArgumentException e) {
        throw new InvalidRequestException("messages", e.getMessage());
      }
    } else if (prompt instanceof Prompt.Text t) {
      if (t.text() == null || t.text().isEmpty()) {
        throw new InvalidRequestException("prompt", "prompt is empty; give at least one character");
      }
      ids = tokenizer.encode(t.text());
    } else {
      ids = ((Prompt.Tokens) prompt).ids().clone();
      for (int i = 0; i < ids.length; i++) {
        if (ids[i] < 0 || ids[i] >= tokenizer.vocabSize()) {
          throw new InvalidRequestException(
              "prompt_token_ids",
              "prompt_token_ids["
                  + i
                  + "] = "
                  + ids[i]
                  + " is outside the vocabulary (0.."
                  + (tokenizer.vocabSize() - 1)
                  + ")");
        }
      }
    }
    if (ids.length == 0) {
      throw new InvalidRequestException("prompt", "prompt has 0 tokens; give at least one");
    }
    return ids;
  }
}
