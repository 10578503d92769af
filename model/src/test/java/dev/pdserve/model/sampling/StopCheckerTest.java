package dev.pdserve.model.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.tokenizer.ByteTokenizer;
import dev.pdserve.model.tokenizer.HfTokenizer;
import dev.pdserve.model.tokenizer.TokenizerFiles;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class StopCheckerTest {
  private static final ByteTokenizer TOK = ByteTokenizer.create();
  private static final int EOS = TOK.eosId();

  @TempDir Path dir;

  @Test
  void stopStringAcrossTokensEndsTheTextBeforeIt() {
    StopChecker checker = new StopChecker(TOK, params(b -> b.stop("END")));
    Run run = feed(checker, TOK.encode("Hello END world"));
    assertEquals("Hello ", run.text(), "deltas: " + run.deltas);
    assertEquals(checker.text(), run.text());
    StopChecker.Step last = run.steps.get(run.steps.size() - 1);
    assertEquals(FinishReason.STOP, last.finishReason());
    assertEquals("END", last.stopString());
    assertEquals(-1, last.stopTokenId());
    assertEquals(9, checker.generatedCount(), "stops at the D of END");
    assertFalse(
        run.deltas.stream().anyMatch(d -> d.contains("E")),
        "no part of the stop string streams: " + run.deltas);
  }

  @Test
  void aPartialStopMatchIsHeldThenReleased() {
    StopChecker checker = new StopChecker(TOK, params(b -> b.stop("ENDX")));
    List<String> deltas = new ArrayList<>();
    for (int id : TOK.encode("aENa")) {
      deltas.add(checker.accept(id).delta());
    }
    assertEquals(List.of("a", "", "", "ENa"), deltas);
    assertNull(checker.finishReason());
  }

  @Test
  void stopStringOfMultiByteCharactersSplitAcrossTokens() {
    StopChecker checker = new StopChecker(TOK, params(b -> b.stop("世界")));
    Run run = feed(checker, TOK.encode("a世界b"));
    assertEquals("a", run.text());
    assertEquals(FinishReason.STOP, checker.finishReason());
    assertEquals(1 + 6, checker.generatedCount(), "a + two 3-byte characters");
  }

  @Test
  void theEarliestOfSeveralStopStringsWins() {
    StopChecker checker = new StopChecker(TOK, params(b -> b.stop("cd", "bcde")));
    Run run = feed(checker, TOK.encode("abcdef"));
    assertEquals("ab", run.text());
    assertEquals("cd", run.steps.get(run.steps.size() - 1).stopString());
  }

  @Test
  void eosFinishesAndIsCountedButNotRendered() {
    StopChecker checker = new StopChecker(TOK, params(b -> b));
    Run run = feed(checker, concat(TOK.encode("hi"), EOS, 32 + 'x'));
    assertEquals("hi", run.text());
    StopChecker.Step last = run.steps.get(run.steps.size() - 1);
    assertEquals(FinishReason.STOP, last.finishReason());
    assertEquals(EOS, last.stopTokenId());
    assertArrayEquals(concat(TOK.encode("hi"), EOS), checker.tokenIds());
  }

  @Test
  void stopTokenIdsFinishWithoutRenderingTheToken() {
    int bang = 32 + '!';
    StopChecker checker = new StopChecker(TOK, params(b -> b.stopTokenIds(bang)));
    Run run = feed(checker, TOK.encode("hi!there"));
    assertEquals("hi", run.text());
    assertEquals(bang, run.steps.get(run.steps.size() - 1).stopTokenId());
    assertArrayEquals(TOK.encode("hi!"), checker.tokenIds());
  }

  @Test
  void ignoreEosGeneratesPastEosUntilMaxTokens() {
    StopChecker checker = new StopChecker(TOK, params(b -> b.ignoreEos(true).maxTokens(4)));
    Run run = feed(checker, concat(TOK.encode("a"), EOS, 32 + 'b', 32 + 'c', 32 + 'd'));
    assertEquals("abc", run.text(), "EOS is skipped as a special token");
    assertEquals(FinishReason.LENGTH, checker.finishReason());
    assertEquals(4, checker.generatedCount());
  }

  @Test
  void minTokensDefersEosAndStopStrings() {
    StopChecker checker = new StopChecker(TOK, params(b -> b.minTokens(4).stop("b")));
    assertFalse(checker.accept(EOS).finished(), "EOS as token 1 of min 4");
    assertFalse(
        checker.accept(32 + 'b').finished(), "stop string inside the first min_tokens tokens");
    assertFalse(checker.accept(32 + 'a').finished());
    StopChecker.Step step = checker.accept(32 + 'b');
    assertTrue(step.finished(), "a stop string at token 4 counts");
    assertEquals("ba", checker.text());
  }

  @Test
  void maxTokensFinishesWithLengthAndReleasesHeldText() {
    StopChecker checker = new StopChecker(TOK, params(b -> b.maxTokens(3).stop("xyz")));
    Run run = feed(checker, TOK.encode("abxyz"));
    assertEquals("abx", run.text(), "the held 'x' comes out when the sequence ends");
    assertEquals(FinishReason.LENGTH, checker.finishReason());
  }

  @Test
  void maxTokensInsideAMultiByteCharacterFlushesAReplacementCharacter() {
    StopChecker checker = new StopChecker(TOK, params(b -> b.maxTokens(2)));
    Run run = feed(checker, TOK.encode("a世"));
    assertEquals("a\uFFFD", run.text());
    assertEquals(FinishReason.LENGTH, checker.finishReason());
  }

  @Test
  void acceptingAfterTheFinishFails() {
    StopChecker checker = new StopChecker(TOK, params(b -> b.maxTokens(1)));
    assertTrue(checker.accept(32 + 'a').finished());
    IllegalStateException e =
        assertThrows(IllegalStateException.class, () -> checker.accept(32 + 'b'));
    assertEquals("sequence already finished (length)", e.getMessage());
  }

  @Test
  void abortAndFlushReturnTheHeldText() {
    StopChecker aborted = new StopChecker(TOK, params(b -> b.stop("xyz")));
    assertEquals("a", aborted.accept(32 + 'a').delta());
    assertEquals("", aborted.accept(32 + 'x').delta());
    StopChecker.Step step = aborted.abort();
    assertEquals(new StopChecker.Step("x", FinishReason.ABORT, null, -1), step);
    StopChecker flushed = new StopChecker(TOK, params(b -> b));
    assertEquals("", flushed.accept(32 + 0xE4).delta());
    assertEquals("\uFFFD", flushed.flush());
    assertEquals("", flushed.flush());
  }

  @Test
  void worksWithTheHuggingFaceTokenizer() throws IOException {
    TokenizerFiles.writeByteLevelBpe(dir);
    try (HfTokenizer tok = HfTokenizer.open(dir)) {
      StopChecker checker = new StopChecker(tok, params(b -> b.stop("界 🙂")));
      Run run = feed(checker, tok.encode("hello 世界 🙂 more"));
      assertEquals("hello 世", run.text());
      assertEquals(FinishReason.STOP, checker.finishReason());
      StopChecker eos = new StopChecker(tok, params(b -> b));
      assertEquals("hell", feed(eos, concat(tok.encode("hell"), tok.eosId())).text());
    }
  }

  @Test
  void finishReasonsHaveOpenAiWireNames() {
    assertEquals("stop", FinishReason.STOP.wireName());
    assertEquals("length", FinishReason.LENGTH.wireName());
    assertEquals("abort", FinishReason.ABORT.wireName());
  }

  private static SamplingParams params(UnaryOperator<SamplingParams.Builder> change) {
    return change.apply(SamplingParams.builder().maxTokens(100)).build();
  }

  /** Feeds ids until the checker finishes; the deltas and steps seen. */
  private static Run feed(StopChecker checker, int[] ids) {
    Run run = new Run();
    for (int id : ids) {
      StopChecker.Step step = checker.accept(id);
      run.steps.add(step);
      run.deltas.add(step.delta());
      if (step.finished()) {
        return run;
      }
    }
    run.deltas.add(checker.flush());
    return run;
  }

  private static int[] concat(int[] head, int... tail) {
    int[] out = new int[head.length + tail.length];
    System.arraycopy(head, 0, out, 0, head.length);
    System.arraycopy(tail, 0, out, head.length, tail.length);
    return out;
  }

  private static final class Run {
    final List<StopChecker.Step> steps = new ArrayList<>();
    final List<String> deltas = new ArrayList<>();

    String text() {
      return String.join("", deltas);
    }
  }
}
