package dev.pdserve.model.engine;

import dev.pdserve.model.config.ImageTokenIds;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.vision.VisionEncoder;
import java.util.ArrayList;
import java.util.List;

/**
 * What the language model takes for a prompt with images: its token ids; input rows where each
 * image's placeholders are replaced, in order, by the image's encoded rows; the vision flag on
 * every image placeholder and image/video start and end token (they use the vision experts); and
 * the 3-D rotary positions. A prefill may take the prompt whole ({@link #step}) or in chunks
 * ({@link #chunk}); decode steps after it take {@link PromptPositions#decode}.
 *
 * @param tokens the prompt's token ids
 * @param vision per token: routed to the vision expert group
 * @param embeddings input rows {@code [tokens, hidden]}
 * @param positions 3-D positions and the decode delta
 */
public record PrefillInputs(
    int[] tokens, boolean[] vision, float[] embeddings, PromptPositions positions) {

  /** Encodes the prompt's images and builds the inputs of its prefill. */
  public static PrefillInputs of(
      RenderedPrompt prompt, ModelConfig cfg, ModelRunner runner, VisionEncoder encoder) {
    List<float[]> encoded = new ArrayList<>(prompt.images().size());
    for (ImageSpan span : prompt.images()) {
      encoded.add(encoder.encode(span.image()));
    }
    return of(prompt, cfg, runner, encoded);
  }

  /**
   * Builds the inputs of a prompt's prefill from its images' encoded rows ({@code imageRows.get(k)}
   * of image k, {@code [tokens, hidden]}, as {@link VisionEncoder#encode} makes them; only read).
   */
  public static PrefillInputs of(
      RenderedPrompt prompt, ModelConfig cfg, ModelRunner runner, List<float[]> imageRows) {
    ImageTokenIds ids =
        cfg.vision()
            .orElseThrow(() -> new IllegalArgumentException(cfg.name() + " takes no images"))
            .tokens();
    if (imageRows.size() != prompt.images().size()) {
      throw new IllegalArgumentException(
          imageRows.size() + " encoded images for " + prompt.images().size() + " images");
    }
    int[] tokens = prompt.ids();
    int h = cfg.hidden();
    float[] rows = runner.embed(tokens);
    for (int k = 0; k < prompt.images().size(); k++) {
      ImageSpan span = prompt.images().get(k);
      float[] image = imageRows.get(k);
      if (image.length != span.tokens() * h) {
        throw new IllegalStateException(
            "the encoder made "
                + image.length / h
                + " rows for "
                + span.tokens()
                + " placeholders");
      }
      System.arraycopy(image, 0, rows, span.start() * h, image.length);
    }
    boolean[] vision = new boolean[tokens.length];
    for (int i = 0; i < tokens.length; i++) {
      vision[i] = ids.isVisionToken(tokens[i]);
    }
    return new PrefillInputs(tokens, vision, rows, prompt.positions());
  }

  /** The whole prompt as one step. */
  public SequenceStep step(SequenceKv kv, boolean wantLogits) {
    return chunk(0, tokens.length, kv, wantLogits);
  }

  /**
   * Prompt tokens {@code [from, to)} as one step (the cache must hold tokens before {@code from}).
   */
  public SequenceStep chunk(int from, int to, SequenceKv kv, boolean wantLogits) {
    if (kv.length() != from) {
      throw new IllegalArgumentException(
          "a chunk from token "
              + from
              + " needs a cache of "
              + from
              + " positions, got "
              + kv.length());
    }
    int n = to - from;
    int[] t = new int[n];
    boolean[] v = new boolean[n];
    float[] e = new float[n * (embeddings.length / tokens.length)];
    System.arraycopy(tokens, from, t, 0, n);
    System.arraycopy(vision, from, v, 0, n);
    System.arraycopy(embeddings, from * (e.length / n), e, 0, e.length);
    return new SequenceStep(t, v, e, positions.slice(from, to), kv, wantLogits);
  }

  /**
   * The step that decodes {@code token}, the next token of a sequence whose cache is {@code kv}.
   */
  public SequenceStep decode(int token, SequenceKv kv) {
    return new SequenceStep(new int[] {token}, null, null, positions.decode(kv.length()), kv, true);
  }
}
