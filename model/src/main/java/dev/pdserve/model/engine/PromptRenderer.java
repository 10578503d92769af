package dev.pdserve.model.engine;

import dev.pdserve.model.config.ImageTokenIds;
import dev.pdserve.model.config.VisionConfig;
import dev.pdserve.model.sampling.InvalidRequestException;
import dev.pdserve.model.tokenizer.ChatMessage;
import dev.pdserve.model.tokenizer.ChatTemplate;
import dev.pdserve.model.tokenizer.ContentPart;
import dev.pdserve.model.tokenizer.Tokenizer;
import dev.pdserve.model.vision.EncodedImage;
import dev.pdserve.model.vision.ImageDecoder;
import dev.pdserve.model.vision.ImagePreprocessor;
import dev.pdserve.model.vision.InvalidImageException;
import dev.pdserve.model.vision.PatchedImage;
import java.util.ArrayList;
import java.util.List;

/**
 * Turns a {@link Prompt} into token ids: the chat template for messages, the tokenizer for text.
 *
 * <p>A renderer {@link #withVision with vision} also takes images: each image slot ({@code
 * <|IMAGE_START|><|IMAGE_END|>}, which the chat template writes after {@code Picture N:} for every
 * image part) is filled with one {@code <|IMAGE_PLACEHOLDER|>} per merged patch of the next image,
 * which is decoded and preprocessed here. A prompt whose slots and images do not pair up is an
 * {@link InvalidRequestException}, as is an image for a model without vision. A prompt without
 * image slots renders exactly as without vision.
 */
public final class PromptRenderer {
  private final Tokenizer tokenizer;
  private final ChatTemplate template;
  private final ImagePreprocessor images; // null: the model takes no images
  private final ImageTokenIds ids;

  public PromptRenderer(Tokenizer tokenizer, ChatTemplate template) {
    this(tokenizer, template, null, null);
  }

  private PromptRenderer(
      Tokenizer tokenizer, ChatTemplate template, ImagePreprocessor images, ImageTokenIds ids) {
    this.tokenizer = tokenizer;
    this.template = template;
    this.images = images;
    this.ids = ids;
  }

  /**
   * This renderer for a vision model: images are preprocessed with {@code vision}'s settings and
   * expanded with its token ids, which must be resolved.
   */
  public PromptRenderer withVision(VisionConfig vision) {
    return withVision(vision, ImageDecoder.DEFAULT_MAX_PIXELS);
  }

  /**
   * As {@link #withVision(VisionConfig)}, refusing images whose header declares more than {@code
   * maxPixels} pixels (before decoding them).
   */
  public PromptRenderer withVision(VisionConfig vision, long maxPixels) {
    if (!vision.tokens().resolved()) {
      throw new IllegalArgumentException(
          "the image token ids of the vision config are not resolved: " + vision.tokens());
    }
    return new PromptRenderer(
        tokenizer,
        template,
        new ImagePreprocessor(vision, new ImageDecoder(maxPixels)),
        vision.tokens());
  }

  public Tokenizer tokenizer() {
    return tokenizer;
  }

  /** Whether this renderer takes images. */
  public boolean takesImages() {
    return images != null;
  }

  /** The prompt's token ids (images expanded to their placeholders); never empty. */
  public int[] render(Prompt prompt, boolean enableThinking) {
    return renderWithImages(prompt, enableThinking).ids();
  }

  /** The prompt's token ids and, for a prompt with images, where each image is. */
  public RenderedPrompt renderWithImages(Prompt prompt, boolean enableThinking) {
    int[] slotted = slotted(prompt, enableThinking);
    String field = field(prompt);
    List<EncodedImage> given = prompt.images();
    if (images == null) {
      if (!given.isEmpty()) {
        throw new InvalidRequestException(
            field, "this model takes no images (it has no vision encoder); send text only");
      }
      return new RenderedPrompt(slotted, List.of());
    }
    List<Integer> slots = new ArrayList<>();
    for (int i = 0; i + 1 < slotted.length; i++) {
      if (slotted[i] == ids.start() && slotted[i + 1] == ids.end()) {
        slots.add(i);
      }
    }
    if (slots.size() != given.size()) {
      throw new InvalidRequestException(
          field,
          "the prompt has "
              + slots.size()
              + " image slot"
              + (slots.size() == 1 ? "" : "s")
              + " ("
              + ChatTemplate.IMAGE_SLOT
              + ") but "
              + given.size()
              + " image"
              + (given.size() == 1 ? " was" : "s were")
              + " given; give one image per slot");
    }
    if (slots.isEmpty()) {
      return new RenderedPrompt(slotted, List.of());
    }
    List<String> labels = labels(prompt);
    List<PatchedImage> patched = new ArrayList<>();
    int extra = 0;
    for (int k = 0; k < given.size(); k++) {
      try {
        patched.add(images.preprocess(given.get(k)));
      } catch (InvalidImageException e) {
        throw new InvalidRequestException(
            prompt instanceof Prompt.Messages ? "messages" : "images",
            labels.get(k) + ": " + e.getMessage());
      }
      extra += patched.get(k).tokens();
    }
    int[] out = new int[slotted.length + extra];
    List<ImageSpan> spans = new ArrayList<>();
    int o = 0;
    int from = 0;
    for (int k = 0; k < slots.size(); k++) {
      int slot = slots.get(k);
      int len = slot + 1 - from; // through the start token
      System.arraycopy(slotted, from, out, o, len);
      o += len;
      spans.add(new ImageSpan(o, patched.get(k)));
      for (int t = 0; t < patched.get(k).tokens(); t++) {
        out[o++] = ids.placeholder();
      }
      from = slot + 1; // the end token comes next
    }
    System.arraycopy(slotted, from, out, o, slotted.length - from);
    return new RenderedPrompt(out, spans);
  }

  /** Token ids with every image still an empty slot. */
  private int[] slotted(Prompt prompt, boolean enableThinking) {
    int[] out;
    if (prompt instanceof Prompt.Messages m) {
      if (m.messages().isEmpty()) {
        throw new InvalidRequestException(
            "messages", "messages is empty; give at least one message");
      }
      String text;
      try {
        text = template.render(m.messages(), true, enableThinking);
      } catch (InvalidRequestException e) {
        throw e;
      } catch (IllegalArgumentException e) {
        throw new InvalidRequestException("messages", e.getMessage());
      }
      out = images == null ? tokenizer.encode(text) : encodeWithSlots(text);
    } else if (prompt instanceof Prompt.Text t) {
      if (t.text() == null || t.text().isEmpty()) {
        throw new InvalidRequestException("prompt", "prompt is empty; give at least one character");
      }
      out = tokenizer.encode(t.text());
    } else {
      out = ((Prompt.Tokens) prompt).ids().clone();
      for (int i = 0; i < out.length; i++) {
        if (out[i] < 0 || out[i] >= tokenizer.vocabSize()) {
          throw new InvalidRequestException(
              "prompt_token_ids",
              "prompt_token_ids["
                  + i
                  + "] = "
                  + out[i]
                  + " is outside the vocabulary (0.."
                  + (tokenizer.vocabSize() - 1)
                  + ")");
        }
      }
    }
    if (out.length == 0) {
      throw new InvalidRequestException("prompt", "prompt has 0 tokens; give at least one");
    }
    return out;
  }

  /**
   * The template's text with each {@link ChatTemplate#IMAGE_SLOT} as the configured start and end
   * ids, whatever ids the tokenizer gives those strings; the text around them is encoded as is.
   */
  private int[] encodeWithSlots(String text) {
    List<int[]> parts = new ArrayList<>();
    int n = 0;
    int from = 0;
    while (true) {
      int at = text.indexOf(ChatTemplate.IMAGE_SLOT, from);
      int[] seg = tokenizer.encode(text.substring(from, at < 0 ? text.length() : at));
      parts.add(seg);
      n += seg.length;
      if (at < 0) {
        break;
      }
      parts.add(new int[] {ids.start(), ids.end()});
      n += 2;
      from = at + ChatTemplate.IMAGE_SLOT.length();
    }
    int[] out = new int[n];
    int o = 0;
    for (int[] p : parts) {
      System.arraycopy(p, 0, out, o, p.length);
      o += p.length;
    }
    return out;
  }

  private static String field(Prompt prompt) {
    if (prompt instanceof Prompt.Messages) {
      return "messages";
    }
    return prompt instanceof Prompt.Text ? "prompt" : "prompt_token_ids";
  }

  /** Where each image of the prompt is, as a client would name it. */
  private static List<String> labels(Prompt prompt) {
    List<String> out = new ArrayList<>();
    if (prompt instanceof Prompt.Messages m) {
      for (int i = 0; i < m.messages().size(); i++) {
        ChatMessage msg = m.messages().get(i);
        for (int j = 0; j < msg.parts().size(); j++) {
          if (msg.parts().get(j) instanceof ContentPart.Image) {
            out.add("messages[" + i + "].content[" + j + "]");
          }
        }
      }
    } else {
      for (int k = 0; k < prompt.images().size(); k++) {
        out.add("images[" + k + "]");
      }
    }
    return out;
  }
}
