package dev.pdserve.model.engine;

/**
 * One sequence's share of a forward step: its new tokens (all of a prompt chunk, or the one token
 * being decoded), each token's modality, optional input embeddings that replace the token
 * embeddings (rows {@code [n, hidden]}, for image patches), and its KV cache.
 *
 * @param tokens new token ids, at least one
 * @param vision per-token modality (true = vision group); null when all tokens are text
 * @param embeddings optional replacement embedding rows; null to look the tokens up
 * @param kv the sequence's cache; the new tokens take positions from {@code kv.length()}
 * @param wantLogits whether to compute logits for the last new token
 */
public record SequenceStep(
    int[] tokens, boolean[] vision, float[] embeddings, SequenceKv kv, boolean wantLogits) {
  public SequenceStep {
    if (tokens.length == 0) {
      throw new IllegalArgumentException("a sequence step needs at least one token");
    }
    if (vision != null && vision.length != tokens.length) {
      throw new IllegalArgumentException(
          "vision flags (" + vision.length + ") must match tokens (" + tokens.length + ")");
    }
  }

  public static SequenceStep text(int[] tokens, SequenceKv kv, boolean wantLogits) {
    return new SequenceStep(tokens, null, null, kv, wantLogits);
  }

  public boolean isVision(int t) {
    return vision != null && vision[t];
  }
}
