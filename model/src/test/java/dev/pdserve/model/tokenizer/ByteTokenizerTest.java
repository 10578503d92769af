package dev.pdserve.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.ModelPresets;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

class ByteTokenizerTest {
  private final ByteTokenizer tokenizer = ByteTokenizer.create();

  @Test
  void roundTripsNonAsciiTextAsUtf8Bytes() {
    String text = "héllo 世界 🙂";
    int[] ids = tokenizer.encode(text);
    byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
    assertEquals(utf8.length, ids.length, "one token per UTF-8 byte: " + Arrays.toString(ids));
    for (int i = 0; i < ids.length; i++) {
      assertEquals(32 + (utf8[i] & 0xff), ids[i], "id of byte " + i);
    }
    assertEquals(text, tokenizer.decode(ids, true));
    assertEquals(text, tokenizer.decode(ids, false));
  }

  @Test
  void mapsSpecialTokenStringsInTextToTheirIds() {
    int[] ids = tokenizer.encode("<|begin_of_sentence|>hi<think></think><s></s><|reserved_31|>");
    assertArrayEquals(new int[] {3, 32 + 'h', 32 + 'i', 5, 6, 1, 2, 31}, ids);
    assertEquals("hi", tokenizer.decode(ids, true));
    assertEquals(
        "<|begin_of_sentence|>hi<think></think><s></s><|reserved_31|>",
        tokenizer.decode(ids, false));
  }

  @Test
  void keepsTextThatOnlyLooksLikeASpecialTokenAsBytes() {
    String text = "<|begin_of<b> a<s";
    int[] ids = tokenizer.encode(text);
    assertEquals(text.length(), ids.length, Arrays.toString(ids));
    assertTrue(
        Arrays.stream(ids).allMatch(id -> id >= 32), "no special ids in " + Arrays.toString(ids));
    assertEquals(text, tokenizer.decode(ids, false));
  }

  @Test
  void addsNoBosOrEos() {
    assertArrayEquals(new int[0], tokenizer.encode(""));
    assertArrayEquals(new int[] {32 + 'a'}, tokenizer.encode("a"));
  }

  @Test
  void decodesInvalidUtf8WithReplacementCharacters() {
    assertEquals("\uFFFD", tokenizer.decode(new int[] {32 + 0xC3}, true), "a lone lead byte");
    assertEquals("\uFFFDa", tokenizer.decode(new int[] {32 + 0xFF, 32 + 'a'}, true));
    assertEquals("é", tokenizer.decode(new int[] {32 + 0xC3, 32 + 0xA9}, true));
  }

  @Test
  void hasTheDocumentedLayout() {
    assertEquals(ModelPresets.BYTE_VOCAB, tokenizer.vocabSize());
    assertEquals(0, tokenizer.padId());
    assertEquals(1, tokenizer.bosId());
    assertEquals(2, tokenizer.eosId());
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
    for (int id = 0; id < named.length; id++) {
      assertEquals(OptionalInt.of(id), tokenizer.specialTokenId(named[id]), named[id]);
      assertEquals(named[id], ByteTokenizer.specialToken(id));
    }
    assertEquals(OptionalInt.of(12), tokenizer.specialTokenId("<|reserved_12|>"));
    assertEquals(OptionalInt.empty(), tokenizer.specialTokenId("<|reserved_32|>"));
    assertTrue(tokenizer.isSpecial(31));
    assertFalse(tokenizer.isSpecial(32));
    assertFalse(tokenizer.isSpecial(287));
  }

  @Test
  void largerVocabularyDecodesExtraIdsToEmptyText() {
    ByteTokenizer wide = ByteTokenizer.withVocabSize(300);
    assertEquals(300, wide.vocabSize());
    assertEquals("ab", wide.decode(new int[] {32 + 'a', 288, 299, 32 + 'b'}, true));
    assertFalse(wide.isSpecial(299));
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> tokenizer.decode(new int[] {288}, true));
    assertEquals("token id 288 is outside the vocabulary (0..287)", e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> ByteTokenizer.withVocabSize(100));
  }
}
