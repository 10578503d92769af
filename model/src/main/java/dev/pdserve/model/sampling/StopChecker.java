package dev.pdserve.model.sampling;

import dev.pdserve.model.tokenizer.Tokenizer;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Follows one sequence's output token by token: produces the text to stream now and decides when
 * and why the sequence finishes, as vLLM's output processor does.
 *
 * <ul>
 *   <li>Text comes from an {@link IncrementalDetokenizer}: incomplete UTF-8 is held back, special
 *       tokens are skipped by default.
 *   <li>A trailing part of the text that could be the start of a stop string is held back until it
 *       either completes the stop string or cannot anymore.
 *   <li>A stop string in the text finishes with {@link FinishReason#STOP}; the text ends just
 *       before it (the stop string is not included, vLLM's default).
 *   <li>A stop token id, or EOS unless {@code ignore_eos}, finishes with {@link FinishReason#STOP};
 *       the token is in {@link #tokenIds()} but adds no text.
 *   <li>{@code max_tokens} tokens finish with {@link FinishReason#LENGTH}.
 *   <li>Before {@code min_tokens} tokens, EOS, stop tokens and stop strings do not finish the
 *       sequence (the check runs once the count reaches {@code min_tokens}, as in vLLM).
 * </ul>
 *
 * The deltas of all steps, plus {@link #flush()} or {@link #abort()} when the sequence ends without
 * a finish, concatenate to {@link #text()}. Not thread-safe: one per sequence.
 */
public final class StopChecker {
  private final SamplingParams params;
  private final int eosId;
  private final Set<Integer> stopTokenIds;
  private final List<String> stops;
  private final IncrementalDetokenizer detokenizer;
  private final StringBuilder text = new StringBuilder();
  private int emitted;
  private int[] tokenIds = new int[16];
  private int count;
  private FinishReason finishReason;
  private boolean closed;

  /**
   * What one token changed.
   *
   * @param delta text to stream now (possibly empty)
   * @param finishReason null while the sequence goes on
   * @param stopString the stop string that finished it, else null
   * @param stopTokenId the stop or EOS token that finished it, else -1
   */
  public record Step(String delta, FinishReason finishReason, String stopString, int stopTokenId) {
    public boolean finished() {
      return finishReason != null;
    }
  }

  /** Skips special tokens in the text; no prompt context. */
  public StopChecker(Tokenizer tokenizer, SamplingParams params) {
    this(tokenizer, params, new int[0], true);
  }

  /**
   * @param promptIds the prompt, whose last tokens give the detokenizer its left context
   * @param skipSpecialTokens leave special tokens out of the text (the default elsewhere)
   */
  public StopChecker(
      Tokenizer tokenizer, SamplingParams params, int[] promptIds, boolean skipSpecialTokens) {
    this.params = params;
    this.eosId = tokenizer.eosId();
    this.stopTokenIds = new HashSet<>(params.stopTokenIds());
    this.stops = params.stop();
    this.detokenizer = new IncrementalDetokenizer(tokenizer, promptIds, skipSpecialTokens);
  }

  /**
   * Feeds the next generated token.
   *
   * @throws IllegalStateException if the sequence already finished or was flushed
   */
  public Step accept(int tokenId) {
    if (closed) {
      throw new IllegalStateException(
          "sequence already "
              + (finishReason == null ? "flushed" : "finished (" + finishReason.wireName() + ")"));
    }
    if (count == tokenIds.length) {
      tokenIds = Arrays.copyOf(tokenIds, count * 2);
    }
    tokenIds[count++] = tokenId;
    boolean stopsActive = count >= params.minTokens();

    if (stopsActive
        && (stopTokenIds.contains(tokenId) || (tokenId == eosId && !params.ignoreEos()))) {
      text.append(detokenizer.flush());
      return finish(FinishReason.STOP, null, tokenId);
    }
    text.append(detokenizer.accept(tokenId));
    boolean last = count >= params.maxTokens();
    if (last) {
      text.append(detokenizer.flush());
    }
    if (stopsActive && !stops.isEmpty()) {
      int at = -1;
      String found = null;
      for (String s : stops) {
        int i = text.indexOf(s, emitted);
        if (i >= 0 && (at < 0 || i < at)) {
          at = i;
          found = s;
        }
      }
      if (found != null) {
        text.setLength(at);
        return finish(FinishReason.STOP, found, -1);
      }
    }
    if (last) {
      return finish(FinishReason.LENGTH, null, -1);
    }
    int end = text.length() - heldForStops();
    String delta = text.substring(emitted, end);
    emitted = end;
    return new Step(delta, null, null, -1);
  }

  /**
   * Ends the sequence without a finish of its own (for example when the caller stops it) and
   * returns the text still held back; later calls return "". Returns "" after a finish.
   */
  public String flush() {
    if (closed) {
      return "";
    }
    closed = true;
    text.append(detokenizer.flush());
    String rest = text.substring(emitted);
    emitted = text.length();
    return rest;
  }

  /** Ends the sequence as {@link FinishReason#ABORT}, with the held-back text as the delta. */
  public Step abort() {
    if (closed) {
      throw new IllegalStateException("sequence already ended");
    }
    String rest = flush();
    finishReason = FinishReason.ABORT;
    return new Step(rest, FinishReason.ABORT, null, -1);
  }

  /** Null until the sequence finishes. */
  public FinishReason finishReason() {
    return finishReason;
  }

  public boolean finished() {
    return finishReason != null;
  }

  /** Tokens accepted, the finishing stop/EOS token included. */
  public int generatedCount() {
    return count;
  }

  public int[] tokenIds() {
    return Arrays.copyOf(tokenIds, count);
  }

  /**
   * The output text so far, including the part held back as a possible stop string (after a stop
   * string: the text before it); bytes of an incomplete character are not in it yet.
   */
  public String text() {
    return text.toString();
  }

  private Step finish(FinishReason reason, String stopString, int stopTokenId) {
    String delta = text.substring(emitted);
    emitted = text.length();
    finishReason = reason;
    closed = true;
    return new Step(delta, reason, stopString, stopTokenId);
  }

  /**
   * Length of the longest suffix of the unemitted text that is a proper prefix of a stop string: it
   * may still become a stop string, so it is not streamed yet.
   */
  private int heldForStops() {
    int available = text.length() - emitted;
    int held = 0;
    for (String s : stops) {
      for (int k = Math.min(s.length() - 1, available); k > held; k--) {
        if (endsWith(text, s, k)) {
          held = k;
          break;
        }
      }
    }
    return held;
  }

  /** Whether {@code text} ends with the first {@code k} chars of {@code s}. */
  private static boolean endsWith(StringBuilder text, String s, int k) {
    int start = text.length() - k;
    for (int i = 0; i < k; i++) {
      if (text.charAt(start + i) != s.charAt(i)) {
        return false;
      }
    }
    return true;
  }
}
