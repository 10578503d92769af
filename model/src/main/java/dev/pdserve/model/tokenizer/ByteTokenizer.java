package dev.pdserve.model.tokenizer;

import dev.pdserve.model.config.ModelPresets;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;

/**
 * The tokenizer of the dummy presets: one token per UTF-8 byte, plus ERNIE's special tokens.
 *
 * <p>Layout ({@link ModelPresets#BYTE_VOCAB} = 288 ids):
 *
 * <ul>
 *   <li>0 {@code <pad>}, 1 {@code <s>} (BOS), 2 {@code </s>} (EOS), 3 {@code
 *       <|begin_of_sentence|>}, 4 {@code <|end_of_sentence|>}, 5 {@code <think>}, 6 {@code
 *       </think>}, 7 {@code <|IMAGE_START|>}, 8 {@code <|IMAGE_END|>}, 9 {@code
 *       <|IMAGE_PLACEHOLDER|>}, 10 {@code <|VIDEO_START|>}, 11 {@code <|VIDEO_END|>};
 *   <li>12..31 {@code <|reserved_N|>} where N is the id ({@code <|reserved_12|>} .. {@code
 *       <|reserved_31|>});
 *   <li>32..287 the 256 byte values: id = 32 + byte.
 * </ul>
 *
 * <p>{@link #withVocabSize(int)} makes a tokenizer for a model whose vocabulary is larger than 288
 * (its logits have more entries, so it may emit those ids): ids 288 and up are neither bytes nor
 * special tokens and decode to empty text. {@link #encode} never produces them.
 *
 * <p>Immutable and thread-safe.
 */
public final class ByteTokenizer implements Tokenizer {
  /** First byte id: id = {@code BYTE_OFFSET + (b & 0xff)}. */
  public static final int BYTE_OFFSET = 32;

  public static final int PAD_ID = 0;
  public static final int BOS_ID = 1;
  public static final int EOS_ID = 2;

  private static final String[] SPECIALS = specials();
  private static final Map<String, Integer> SPECIAL_IDS = specialIds();

  /** Specials longest first, so that a longer token wins over a prefix of it. */
  private static final List<String> MATCH_ORDER = matchOrder();

  private final int vocabSize;

  private ByteTokenizer(int vocabSize) {
    this.vocabSize = vocabSize;
  }

  /** The tokenizer of the dummy presets: exactly {@link ModelPresets#BYTE_VOCAB} ids. */
  public static ByteTokenizer create() {
    return new ByteTokenizer(ModelPresets.BYTE_VOCAB);
  }

  /**
   * A byte tokenizer for a model with {@code vocabSize} ids ({@code >= 288}); ids from 288 up
   * decode to empty text.
   */
  public static ByteTokenizer withVocabSize(int vocabSize) {
    if (vocabSize < ModelPresets.BYTE_VOCAB) {
      throw new IllegalArgumentException(
          "vocab size of a byte tokenizer must be >= "
              + ModelPresets.BYTE_VOCAB
              + ", got "
              + vocabSize);
    }
    return new ByteTokenizer(vocabSize);
  }

  @Override
  public int[] encode(String text) {
    int[] out = new int[Math.max(16, text.length() + 8)];
    int n = 0;
    int segmentStart = 0;
    int i = 0;
    while (i < text.length()) {
      String special = text.charAt(i) == '<' ? specialAt(text, i) : null;
      if (special == null) {
        i++;
        continue;
      }
      byte[] bytes = text.substring(segmentStart, i).getBytes(StandardCharsets.UTF_8);
      out = ensure(out, n + bytes.length + 1);
      n = appendBytes(out, n, bytes);
      out[n++] = SPECIAL_IDS.get(special);
      i += special.length();
      segmentStart = i;
    }
    byte[] tail = text.substring(segmentStart).getBytes(StandardCharsets.UTF_8);
    out = ensure(out, n + tail.length);
    n = appendBytes(out, n, tail);
    return Arrays.copyOf(out, n);
  }

  @Override
  public String decode(int[] ids, boolean skipSpecialTokens) {
    StringBuilder text = new StringBuilder(ids.length);
    byte[] pending = new byte[ids.length];
    int n = 0;
    for (int id : ids) {
      checkId(id);
      if (id >= BYTE_OFFSET && id < ModelPresets.BYTE_VOCAB) {
        pending[n++] = (byte) (id - BYTE_OFFSET);
      } else if (id < BYTE_OFFSET && !skipSpecialTokens) {
        text.append(new String(pending, 0, n, StandardCharsets.UTF_8));
        n = 0;
        text.append(SPECIALS[id]);
      }
      // skipped specials and ids >= 288 contribute no text
    }
    text.append(new String(pending, 0, n, StandardCharsets.UTF_8));
    return text.toString();
  }

  @Override
  public int vocabSize() {
    return vocabSize;
  }

  @Override
  public int bosId() {
    return BOS_ID;
  }

  @Override
  public int eosId() {
    return EOS_ID;
  }

  @Override
  public int padId() {
    return PAD_ID;
  }

  @Override
  public OptionalInt specialTokenId(String token) {
    Integer id = SPECIAL_IDS.get(token);
    return id == null ? OptionalInt.empty() : OptionalInt.of(id);
  }

  @Override
  public boolean isSpecial(int id) {
    return id >= 0 && id < BYTE_OFFSET;
  }

  /** The string of special token {@code id} (0..31). */
  public static String specialToken(int id) {
    if (id < 0 || id >= BYTE_OFFSET) {
      throw new IllegalArgumentException(
          "special token ids are 0.." + (BYTE_OFFSET - 1) + ", got " + id);
    }
    return SPECIALS[id];
  }

  @Override
  public String describe() {
    return "byte tokenizer (vocab "
        + vocabSize
        + ", "
        + BYTE_OFFSET
        + " special tokens, bos <s>="
        + BOS_ID
        + ", eos </s>="
        + EOS_ID
        + ")";
  }

  @Override
  public String toString() {
    return describe();
  }

  private void checkId(int id) {
    if (id < 0 || id >= vocabSize) {
      throw new IllegalArgumentException(
          "token id " + id + " is outside the vocabulary (0.." + (vocabSize - 1) + ")");
    }
  }

  private static String specialAt(String text, int i) {
    for (String s : MATCH_ORDER) {
      if (text.startsWith(s, i)) {
        return s;
      }
    }
    return null;
  }

  private static int[] ensure(int[] a, int size) {
    return size <= a.length ? a : Arrays.copyOf(a, Math.max(size, a.length * 2));
  }

  private static int appendBytes(int[] out, int n, byte[] bytes) {
    for (byte b : bytes) {
      out[n++] = BYTE_OFFSET + (b & 0xff);
    }
    return n;
  }

  private static String[] specials() {
    String[] s = new String[BYTE_OFFSET];
    String[] named = {
      "<pad>",
      "<s>",
      "</s>",
      "<|begin_of_sentence|>",
      "<|end_of_sentence|>",
      "<think>",
      "</think>",
      "<|IMAGE_START|>",
      "<|IMAGE_END|>",
      "<|IMAGE_PLACEHOLDER|>",
      "<|VIDEO_START|>",
      "<|VIDEO_END|>"
    };
    System.arraycopy(named, 0, s, 0, named.length);
    for (int id = named.length; id < BYTE_OFFSET; id++) {
      s[id] = "<|reserved_" + id + "|>";
    }
    return s;
  }

  private static Map<String, Integer> specialIds() {
    Map<String, Integer> m = new HashMap<>();
    for (int id = 0; id < SPECIALS.length; id++) {
      m.put(SPECIALS[id], id);
    }
    return Collections.unmodifiableMap(m);
  }

  private static List<String> matchOrder() {
    List<String> order = new ArrayList<>(Arrays.asList(SPECIALS));
    order.sort((a, b) -> Integer.compare(b.length(), a.length()));
    return List.copyOf(order);
  }
}
