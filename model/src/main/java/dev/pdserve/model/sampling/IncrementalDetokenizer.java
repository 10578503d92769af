package dev.pdserve.model.sampling;

import dev.pdserve.model.tokenizer.Tokenizer;
import java.util.Arrays;

/**
 * Turns a stream of token ids into a stream of text deltas, as vLLM does: each step decodes a short
 * window of recent ids twice, without and with the new tokens, and emits the difference. Decoding a
 * window rather than single tokens keeps what a token's text depends on its neighbours right (the
 * leading space of SentencePiece pieces, characters whose UTF-8 bytes are split across tokens).
 *
 * <p>While the window's text ends in U+FFFD the new tokens may be the first bytes of a character,
 * so nothing is emitted until a later token completes it; {@link #flush()} emits what is still held
 * (with U+FFFD for bytes that never formed a character). After {@value #MAX_PENDING_TOKENS} tokens
 * without a complete character the held text is emitted as it is.
 *
 * <p>The concatenated deltas equal {@code tokenizer.decode(allIds, skipSpecialTokens)} for
 * byte-level tokenizers. Not thread-safe: one per sequence.
 */
public final class IncrementalDetokenizer {
  /** Prompt tokens kept as left context for the first generated tokens (vLLM uses 5). */
  public static final int PROMPT_CONTEXT_TOKENS = 5;

  /** A character has at most 4 UTF-8 bytes; past this many tokens held text is emitted anyway. */
  static final int MAX_PENDING_TOKENS = 8;

  private static final char REPLACEMENT = '\uFFFD';

  private final Tokenizer tokenizer;
  private final boolean skipSpecialTokens;
  private int[] ids;
  private int size;

  /** Start of the decode window. */
  private int prefixOffset;

  /** Ids before this are emitted. */
  private int readOffset;

  /** A detokenizer with no left context (the first token decodes as at the start of a text). */
  public IncrementalDetokenizer(Tokenizer tokenizer, boolean skipSpecialTokens) {
    this(tokenizer, new int[0], skipSpecialTokens);
  }

  /**
   * A detokenizer whose window starts with the last {@value #PROMPT_CONTEXT_TOKENS} ids of {@code
   * promptIds}, so the first generated token decodes as it does after the prompt (a leading space
   * is kept). The prompt's own text is never emitted.
   */
  public IncrementalDetokenizer(Tokenizer tokenizer, int[] promptIds, boolean skipSpecialTokens) {
    this.tokenizer = tokenizer;
    this.skipSpecialTokens = skipSpecialTokens;
    int context = Math.min(PROMPT_CONTEXT_TOKENS, promptIds.length);
    this.ids =
        Arrays.copyOf(
            Arrays.copyOfRange(promptIds, promptIds.length - context, promptIds.length),
            context + 16);
    this.size = context;
    this.prefixOffset = 0;
    this.readOffset = context;
  }

  /** Adds a token and returns the text that can be emitted now (possibly empty). */
  public String accept(int tokenId) {
    if (size == ids.length) {
      compact();
    }
    ids[size++] = tokenId;
    String prefix = decode(prefixOffset, readOffset);
    String full = decode(prefixOffset, size);
    boolean incomplete = !full.isEmpty() && full.charAt(full.length() - 1) == REPLACEMENT;
    if (incomplete && size - readOffset < MAX_PENDING_TOKENS) {
      return "";
    }
    String delta = full.length() > prefix.length() ? full.substring(prefix.length()) : "";
    if (delta.isEmpty() && !incomplete && size - readOffset < MAX_PENDING_TOKENS) {
      return ""; // e.g. a skipped special token: keep it in the window, nothing to say yet
    }
    prefixOffset = readOffset;
    readOffset = size;
    return delta;
  }

  /** Emits everything still held, incomplete characters as U+FFFD. */
  public String flush() {
    if (readOffset == size) {
      return "";
    }
    String prefix = decode(prefixOffset, readOffset);
    String full = decode(prefixOffset, size);
    prefixOffset = readOffset;
    readOffset = size;
    return full.length() > prefix.length() ? full.substring(prefix.length()) : "";
  }

  private String decode(int from, int to) {
    return from == to ? "" : tokenizer.decode(Arrays.copyOfRange(ids, from, to), skipSpecialTokens);
  }

  /** Drops ids before the window; grows when the window itself fills the array. */
  private void compact() {
    int live = size - prefixOffset;
    int[] next = live * 2 > ids.length ? new int[ids.length * 2] : ids;
    System.arraycopy(ids, prefixOffset, next, 0, live);
    ids = next;
    size = live;
    readOffset -= prefixOffset;
    prefixOffset = 0;
  }
}
