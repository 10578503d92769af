package dev.pdserve.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.OptionalInt;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Runs the real Rust tokenizers library (DJL's bundled native) on a tokenizer.json written here.
 */
class HfTokenizerTest {
  @TempDir Path dir;
  private HfTokenizer tokenizer;

  @BeforeEach
  void open() throws IOException {
    TokenizerFiles.writeByteLevelBpe(dir);
    tokenizer = HfTokenizer.open(dir.resolve("tokenizer.json"));
  }

  @AfterEach
  void close() {
    tokenizer.close();
  }

  @Test
  void roundTripsAsciiAndNonAsciiText() {
    for (String text :
        new String[] {"hello world", "héllo 世界 🙂", "line one\nline two\t tab", ""}) {
      int[] ids = tokenizer.encode(text);
      assertEquals(
          text,
          tokenizer.decode(ids, true),
          "round trip of " + text + " via " + Arrays.toString(ids));
    }
  }

  @Test
  void appliesMergesOfTheModel() {
    int[] ids = tokenizer.encode("hell");
    assertArrayEquals(
        new int[] {TokenizerFiles.HE_ID, TokenizerFiles.LL_ID},
        ids,
        "'hell' should merge to he+ll");
  }

  @Test
  void mapsSpecialTokenStringsInTextToTheirIds() {
    int[] ids = tokenizer.encode("<|begin_of_sentence|>User: hi\n<think>");
    assertEquals(3, ids[0], "first id " + Arrays.toString(ids));
    assertEquals(5, ids[ids.length - 1], "last id " + Arrays.toString(ids));
    assertEquals("User: hi\n", tokenizer.decode(ids, true));
    assertEquals("<|begin_of_sentence|>User: hi\n<think>", tokenizer.decode(ids, false));
  }

  @Test
  void addsNoBosOrEos() {
    int[] ids = tokenizer.encode("a");
    assertArrayEquals(new int[] {TokenizerFiles.FIRST_BYTE_ID + 'a'}, ids);
  }

  @Test
  void doesNotTruncateLongInputs() {
    // DJL truncates to 512 tokens unless truncation is switched off
    String text = "x ".repeat(1500);
    int[] ids = tokenizer.encode(text);
    assertEquals(3000, ids.length);
    assertEquals(text, tokenizer.decode(ids, true));
  }

  @Test
  void exposesSpecialTokensAndVocabulary() {
    assertEquals(TokenizerFiles.VOCAB, tokenizer.vocabSize());
    assertEquals(OptionalInt.of(4), tokenizer.specialTokenId("<|end_of_sentence|>"));
    assertEquals(OptionalInt.empty(), tokenizer.specialTokenId("hello"));
    assertTrue(tokenizer.isSpecial(6));
    assertFalse(tokenizer.isSpecial(TokenizerFiles.FIRST_BYTE_ID + 'a'));
    // no tokenizer_config.json: the fallback names <s>/</s>; PAD falls back to EOS
    assertEquals(1, tokenizer.bosId());
    assertEquals(2, tokenizer.eosId());
    assertEquals(2, tokenizer.padId());
    assertTrue(
        tokenizer.describe().contains("vocab " + TokenizerFiles.VOCAB), tokenizer.describe());
  }

  @Test
  void readsBosEosPadFromTokenizerConfig() throws IOException {
    Path other = Files.createDirectory(dir.resolve("with-config"));
    TokenizerFiles.writeByteLevelBpe(other);
    TokenizerFiles.writeConfig(other, "<|begin_of_sentence|>", "<|end_of_sentence|>", "<unk>");
    try (HfTokenizer t = HfTokenizer.open(other, "<s>", "</s>", null)) {
      assertEquals(3, t.bosId());
      assertEquals(4, t.eosId());
      assertEquals(0, t.padId());
    }
  }

  @Test
  void rejectsAMissingFileAndUnknownSpecialTokenNames() {
    IllegalArgumentException missing =
        assertThrows(
            IllegalArgumentException.class,
            () -> HfTokenizer.open(dir.resolve("nope/tokenizer.json")));
    assertTrue(missing.getMessage().contains("does not exist"), missing.getMessage());
    IllegalArgumentException badEos =
        assertThrows(
            IllegalArgumentException.class, () -> HfTokenizer.open(dir, "<s>", "<eos>", null));
    assertTrue(badEos.getMessage().contains("eos_token '<eos>'"), badEos.getMessage());
  }

  @Test
  void rejectsIdsOutsideTheVocabulary() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> tokenizer.decode(new int[] {TokenizerFiles.VOCAB}, true));
    assertTrue(e.getMessage().contains("outside the vocabulary"), e.getMessage());
  }

  @Test
  void putsDjlInOfflineModeSoItNeverProbesTheNetwork() {
    // without it DJL calls the EC2 metadata endpoint and, where CUDA is present, downloads a CUDA
    // build
    assertEquals("true", System.getProperty("ai.djl.offline"));
  }

  @Test
  void usingAClosedTokenizerFailsCleanly() throws IOException {
    HfTokenizer t = HfTokenizer.open(dir);
    t.close();
    t.close(); // idempotent
    assertThrows(IllegalStateException.class, () -> t.encode("a"));
  }
}
