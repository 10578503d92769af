package dev.pdserve.router.http;

/**
 * Splits a thinking model's streamed output into {@code reasoning_content} (what it writes before
 * {@code </think>}) and {@code content} (the rest), one delta at a time.
 *
 * <p>The end of the thought is recognised two ways: the {@code </think>} token id (when the
 * tokenizer has it as a special token, which skips it in the text), or the text {@code </think>}
 * (when it is plain text), which may arrive split across deltas: a trailing part of the text that
 * could begin {@code </think>} is held back until the next delta decides. A leading {@code <think>}
 * in the text is dropped. Until {@code </think>} arrives everything is reasoning, as vLLM's ERNIE
 * parser does. Not thread-safe: one per request.
 */
final class ReasoningSplitter {
  static final String THINK_START = "<think>";
  static final String THINK_END = "</think>";

  /** What one delta adds to each part (empty strings when nothing). */
  record Split(String reasoning, String content) {}

  private final int thinkEndId;
  private final StringBuilder pending = new StringBuilder();
  private boolean atStart = true;
  private boolean inContent;

  /**
   * @param thinkEndId the {@code </think>} token id, or -1 when the tokenizer has none
   */
  ReasoningSplitter(int thinkEndId) {
    this.thinkEndId = thinkEndId;
  }

  Split accept(int[] tokenIds, String text) {
    if (inContent) {
      return new Split("", text);
    }
    StringBuilder reasoning = new StringBuilder();
    StringBuilder content = new StringBuilder();
    pending.append(text);
    scan(reasoning, content, false);
    if (!inContent && thinkEndId >= 0 && contains(tokenIds, thinkEndId)) {
      // the special token adds no text: what came with it was written before it
      scan(reasoning, content, true);
      inContent = true;
    }
    return new Split(reasoning.toString(), content.toString());
  }

  /** At the end of the output: the held-back text (it never became {@code </think>}). */
  Split finish() {
    StringBuilder reasoning = new StringBuilder();
    StringBuilder content = new StringBuilder();
    if (!inContent) {
      scan(reasoning, content, true);
    }
    return new Split(reasoning.toString(), content.toString());
  }

  private void scan(StringBuilder reasoning, StringBuilder content, boolean last) {
    if (atStart) {
      if (startsWith(pending, THINK_START)) {
        pending.delete(0, THINK_START.length());
        atStart = false;
      } else if (!last && THINK_START.startsWith(pending.toString())) {
        return; // still could be "<think>"
      } else {
        atStart = false;
      }
    }
    int end = pending.indexOf(THINK_END);
    if (end >= 0) {
      reasoning.append(pending, 0, end);
      content.append(pending, end + THINK_END.length(), pending.length());
      pending.setLength(0);
      inContent = true;
      return;
    }
    int keep = last ? 0 : heldBack(pending);
    reasoning.append(pending, 0, pending.length() - keep);
    pending.delete(0, pending.length() - keep);
  }

  /** Length of the longest suffix of {@code s} that is a proper prefix of {@code </think>}. */
  private static int heldBack(CharSequence s) {
    for (int n = Math.min(s.length(), THINK_END.length() - 1); n > 0; n--) {
      boolean match = true;
      for (int i = 0; i < n && match; i++) {
        match = s.charAt(s.length() - n + i) == THINK_END.charAt(i);
      }
      if (match) {
        return n;
      }
    }
    return 0;
  }

  private static boolean startsWith(CharSequence s, String prefix) {
    if (s.length() < prefix.length()) {
      return false;
    }
    for (int i = 0; i < prefix.length(); i++) {
      if (s.charAt(i) != prefix.charAt(i)) {
        return false;
      }
    }
    return true;
  }

  private static boolean contains(int[] ids, int id) {
    for (int t : ids) {
      if (t == id) {
        return true;
      }
    }
    return false;
  }
}
