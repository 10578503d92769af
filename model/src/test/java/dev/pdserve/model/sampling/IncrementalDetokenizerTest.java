package dev.pdserve.model.sampling;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.pdserve.model.tokenizer.ByteTokenizer;
import dev.pdserve.model.tokenizer.HfTokenizer;
import dev.pdserve.model.tokenizer.Tokenizer;
import dev.pdserve.model.tokenizer.TokenizerFiles;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class IncrementalDetokenizerTest {
  private static final String TEXT = "héllo 世界 🙂 done";

  @TempDir Path dir;

  @Test
  void byteTokensOfMultiByteCharactersAreHeldUntilComplete() {
    ByteTokenizer tokenizer = ByteTokenizer.create();
    IncrementalDetokenizer detok = new IncrementalDetokenizer(tokenizer, true);
    List<String> deltas = new ArrayList<>();
    for (int id : tokenizer.encode("a世")) {
      deltas.add(detok.accept(id));
    }
    assertEquals(
        List.of("a", "", "", "世"), deltas, "the 3 bytes of 世 come out once, with the last byte");
  }

  @Test
  void streamsByteTokenizerTextWithoutReplacementCharacters() {
    ByteTokenizer tokenizer = ByteTokenizer.create();
    assertStreamsExactly(tokenizer, tokenizer.encode(TEXT), TEXT);
  }

  @Test
  void streamsHuggingFaceByteLevelTextWithoutReplacementCharacters() throws IOException {
    TokenizerFiles.writeByteLevelBpe(dir);
    try (HfTokenizer tokenizer = HfTokenizer.open(dir)) {
      int[] ids = tokenizer.encode(TEXT + " hello");
      assertStreamsExactly(tokenizer, ids, TEXT + " hello");
    }
  }

  @Test
  void skipsSpecialTokensOrRendersThemOnRequest() {
    ByteTokenizer tokenizer = ByteTokenizer.create();
    int[] ids = tokenizer.encode("<think>hi</think>ok");
    assertEquals("hiok", stream(new IncrementalDetokenizer(tokenizer, true), ids));
    assertEquals("<think>hi</think>ok", stream(new IncrementalDetokenizer(tokenizer, false), ids));
  }

  @Test
  void promptContextIsNeverEmitted() {
    ByteTokenizer tokenizer = ByteTokenizer.create();
    int[] prompt = tokenizer.encode("User: 世界\nAssistant: ");
    IncrementalDetokenizer detok = new IncrementalDetokenizer(tokenizer, prompt, true);
    assertEquals("ok", stream(detok, tokenizer.encode("ok")));
  }

  @Test
  void invalidBytesComeOutAsReplacementCharacters() {
    ByteTokenizer tokenizer = ByteTokenizer.create();
    IncrementalDetokenizer detok = new IncrementalDetokenizer(tokenizer, true);
    assertEquals("", detok.accept(32 + 0xFF), "could still be followed by more bytes");
    assertEquals("\uFFFDa", detok.accept(32 + 'a'));
    assertEquals("", detok.accept(32 + 0xE4), "first byte of a 3-byte character");
    assertEquals("\uFFFD", detok.flush(), "flush emits what never completed");
    assertEquals("", detok.flush());
  }

  @Test
  void aLongRunOfInvalidBytesIsEmittedAfterABoundedWait() {
    ByteTokenizer tokenizer = ByteTokenizer.create();
    IncrementalDetokenizer detok = new IncrementalDetokenizer(tokenizer, true);
    StringBuilder out = new StringBuilder();
    for (int i = 0; i < IncrementalDetokenizer.MAX_PENDING_TOKENS; i++) {
      out.append(detok.accept(32 + 0xFF));
    }
    assertFalse(out.isEmpty(), "held text must not grow without bound");
  }

  @Test
  void longStreamsStayCorrectAcrossWindowCompaction() {
    ByteTokenizer tokenizer = ByteTokenizer.create();
    String text = "0123456789 世界 🙂 ".repeat(50);
    assertStreamsExactly(tokenizer, tokenizer.encode(text), text);
  }

  private static void assertStreamsExactly(Tokenizer tokenizer, int[] ids, String expected) {
    IncrementalDetokenizer detok = new IncrementalDetokenizer(tokenizer, true);
    StringBuilder out = new StringBuilder();
    for (int i = 0; i < ids.length; i++) {
      String delta = detok.accept(ids[i]);
      assertFalse(
          delta.contains("\uFFFD"),
          "token " + i + " of " + Arrays.toString(ids) + " emitted '" + delta + "'");
      out.append(delta);
    }
    out.append(detok.flush());
    assertEquals(expected, out.toString());
    assertEquals(
        tokenizer.decode(ids, true), out.toString(), "deltas must add up to the full decode");
  }

  private static String stream(IncrementalDetokenizer detok, int[] ids) {
    StringBuilder out = new StringBuilder();
    for (int id : ids) {
      out.append(detok.accept(id));
    }
    return out.append(detok.flush()).toString();
  }
}
