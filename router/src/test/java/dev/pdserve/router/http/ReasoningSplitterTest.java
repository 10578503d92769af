package dev.pdserve.router.http;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.Test;

class ReasoningSplitterTest {
  private static final int THINK_END_ID = 7;

  /** Feeds text deltas (no special tokens) and returns the whole reasoning and content. */
  private static String[] split(ReasoningSplitter s, List<String> deltas) {
    StringBuilder reasoning = new StringBuilder();
    StringBuilder content = new StringBuilder();
    for (String d : deltas) {
      ReasoningSplitter.Split p = s.accept(new int[] {100}, d);
      reasoning.append(p.reasoning());
      content.append(p.content());
    }
    ReasoningSplitter.Split tail = s.finish();
    reasoning.append(tail.reasoning());
    content.append(tail.content());
    return new String[] {reasoning.toString(), content.toString()};
  }

  @Test
  void textThinkEndSplitAcrossDeltasSeparatesReasoningFromContent() {
    String[] r =
        split(new ReasoningSplitter(-1), List.of("<thi", "nk>let me see", " 2+2</th", "ink>", "4"));
    assertEquals("let me see 2+2", r[0]);
    assertEquals("4", r[1]);
  }

  @Test
  void aHeldBackPrefixThatNeverBecomesThinkEndIsReasoning() {
    String[] r = split(new ReasoningSplitter(-1), List.of("a </t", "able>"));
    assertEquals("a </table>", r[0]);
    assertEquals("", r[1]);
    String[] cut = split(new ReasoningSplitter(-1), List.of("ends in </thi"));
    assertEquals("ends in </thi", cut[0], "at the end, held-back text is flushed as reasoning");
  }

  @Test
  void theThinkEndSpecialTokenSwitchesToContent() {
    ReasoningSplitter s = new ReasoningSplitter(THINK_END_ID);
    assertEquals(
        new ReasoningSplitter.Split("pondering", ""), s.accept(new int[] {100}, "pondering"));
    assertEquals(new ReasoningSplitter.Split("", ""), s.accept(new int[] {THINK_END_ID}, ""));
    assertEquals(new ReasoningSplitter.Split("", "answer"), s.accept(new int[] {101}, "answer"));
    assertEquals(new ReasoningSplitter.Split("", ""), s.finish());
  }

  @Test
  void withoutThinkEndEverythingIsReasoning() {
    String[] r = split(new ReasoningSplitter(THINK_END_ID), List.of("just ", "thinking"));
    assertEquals("just thinking", r[0]);
    assertEquals("", r[1]);
  }
}
