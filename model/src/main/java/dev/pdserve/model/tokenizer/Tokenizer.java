package dev.pdserve.model.tokenizer;

import java.util.OptionalInt;

/**
 * Text to token ids and back. Implementations are thread-safe for {@link #encode} and {@link
 * #decode}.
 *
 * <p>{@link #encode} recognises special-token strings inside the text (for example {@code
 * <|begin_of_sentence|>}) and maps each to its id; everything else is regular text. It never adds
 * BOS or EOS itself: the chat template writes the special tokens a prompt needs.
 */
public interface Tokenizer {

  /** Token ids of {@code text}; special-token strings in it become their ids. */
  int[] encode(String text);

  /**
   * Text of {@code ids}. Byte sequences that are not valid UTF-8 decode to U+FFFD. With {@code
   * skipSpecialTokens} special tokens contribute no text; without it they render as their strings.
   *
   * @throws IllegalArgumentException if an id is negative or not below {@link #vocabSize()}
   */
  String decode(int[] ids, boolean skipSpecialTokens);

  /** Number of token ids; every id is in {@code [0, vocabSize())}. */
  int vocabSize();

  int bosId();

  int eosId();

  int padId();

  /** The id of special token {@code token} (its exact string), if this tokenizer has it. */
  OptionalInt specialTokenId(String token);

  /** Whether {@code id} is a special token (skipped by {@code decode(ids, true)}). */
  boolean isSpecial(int id);

  /** One line for logs and the CLI: kind, source, vocabulary size, BOS/EOS. */
  String describe();
}
