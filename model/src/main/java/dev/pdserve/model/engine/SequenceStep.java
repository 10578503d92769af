package dev.pdserve.model.engine;

/**
 * One sequence's share of a forward step: its new tokens (all of a prompt chunk, or the one token
 * being decoded), each token's modality, optional input embeddings that replace the token
 * embeddings (rows {@code [n, hidden]}, for image patches), optional explicit 3-D rotary positions,
 * and its KV cache.
 *
 * @param tokens new token ids, at least one
 * @param vision per-token modality (true = vision group); null when all tokens are text
 * @param embeddings optional replacement embedding rows; null to look the tokens up
 * @param positions optional 3-D positions, {@code [n, 3]} row-major as (t, h, w) per token (see
 *     {@link PromptPositions}); null for text positions, token t at {@code kv.length() + t} on
 *     every axis
 * @param kv the sequence's cache; the new tokens are stored from {@code kv.length()}
 * @param wantLogits whether to compute logits for the last new token
 */
public record SequenceStep(
    int[] tokens,
    boolean[] vision,
    float[] embeddings,
    int[] positions,
    SequenceKv kv,
    boolean wantLogits) {
  public SequenceStep {
    if (tokens.length == 0) {
      throw new IllegalArgumentException("a sequence step needs at least one token");
    }
    if (vision != null && vision.length != tokens.length) {
      throw new IllegalArgumentException(
          "vision flags (" + vision.length + ") must match tokens (" + tokens.length + ")");
    }
    if (positions != null && positions.length != 3 * tokens.length) {
      throw new IllegalArgumentException(
          "3-D positions ("
              + positions.length
              + " values) must hold (t, h, w) for each of the "
              + tokens.length
              + " tokens");
    }
  }

  /** A step with text positions. */
  public SequenceStep(
      int[] tokens, boolean[] vision, float[] embeddings, SequenceKv kv, boolean wantLogits) {
    this(tokens, vision, embeddings, null, kv, wantLogits);
  }

  public static SequenceStep text(int[] tokens, SequenceKv kv, boolean wantLogits) {
    return new SequenceStep(tokens, null, null, null, kv, wantLogits);
  }

  /**
   * The step that decodes {@code token}, the next token of a sequence whose cache is {@code kv} and
   * whose prompt's 3-D positions have delta {@code positionDelta} ({@link
   * PromptPositions#delta()}): at {@code kv.length() + positionDelta} on every axis. A delta of 0
   * (every text prompt) is a plain text step, whose positions are the same.
   */
  public static SequenceStep decode(int token, SequenceKv kv, int positionDelta) {
    if (positionDelta == 0) {
      return text(new int[] {token}, kv, true);
    }
    int p = kv.length() + positionDelta;
    return new SequenceStep(new int[] {token}, null, null, new int[] {p, p, p}, kv, true);
  }

  public boolean isVision(int t) {
    return vision != null && vision[t];
  }

  /** Tokens of the step that take the vision expert group. */
  public int visionTokens() {
    int n = 0;
    for (int t = 0; vision != null && t < vision.length; t++) {
      n += vision[t] ? 1 : 0;
    }
    return n;
  }

  /** Position of token {@code t} on {@code axis} (Rope.T, H or W). */
  public long position(int t, int axis) {
    return positions == null ? kv.length() + t : positions[t * 3 + axis];
  }
}
