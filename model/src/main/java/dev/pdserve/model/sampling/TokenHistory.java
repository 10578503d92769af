package dev.pdserve.model.sampling;

import java.util.Arrays;

/**
 * The tokens a sequence has seen: its prompt and what it generated so far. The sampler reads it for
 * penalties, {@code min_tokens} and the step number (= {@link #generatedCount()}), so a history
 * rebuilt from the same ids on another machine samples exactly the same next token.
 *
 * <p>Appending is O(1); the distinct prompt ids and the output counts are kept up to date so that
 * penalties cost O(distinct tokens), not O(vocabulary). Not thread-safe: one per sequence.
 */
public final class TokenHistory {
  private final int[] prompt;

  /** Sorted distinct prompt ids. */
  private final int[] promptDistinct;

  private int[] generated;
  private int generatedCount;
  private final IntCountMap outputCounts;

  public TokenHistory(int[] promptIds) {
    for (int i = 0; i < promptIds.length; i++) {
      checkId("promptIds[" + i + "]", promptIds[i]);
    }
    this.prompt = promptIds.clone();
    this.promptDistinct = Arrays.stream(promptIds).sorted().distinct().toArray();
    this.generated = new int[16];
    this.outputCounts = new IntCountMap(16);
  }

  /** A history whose sequence has already generated {@code generatedIds}. */
  public static TokenHistory of(int[] promptIds, int[] generatedIds) {
    TokenHistory h = new TokenHistory(promptIds);
    for (int id : generatedIds) {
      h.append(id);
    }
    return h;
  }

  /** Records a generated token. */
  public void append(int tokenId) {
    checkId("tokenId", tokenId);
    if (generatedCount == generated.length) {
      generated = Arrays.copyOf(generated, generated.length * 2);
    }
    generated[generatedCount++] = tokenId;
    outputCounts.increment(tokenId);
  }

  /** Tokens generated so far; also the step number of the next token to sample. */
  public int generatedCount() {
    return generatedCount;
  }

  public int promptLength() {
    return prompt.length;
  }

  public int generatedId(int index) {
    if (index < 0 || index >= generatedCount) {
      throw new IndexOutOfBoundsException("generated token " + index + " of " + generatedCount);
    }
    return generated[index];
  }

  public int[] promptIds() {
    return prompt.clone();
  }

  public int[] generatedIds() {
    return Arrays.copyOf(generated, generatedCount);
  }

  /** How often {@code tokenId} was generated. */
  public int outputCount(int tokenId) {
    return outputCounts.get(tokenId);
  }

  boolean inPrompt(int tokenId) {
    return Arrays.binarySearch(promptDistinct, tokenId) >= 0;
  }

  /** Internal array, not a copy: the sampler only reads it. */
  int[] promptDistinct() {
    return promptDistinct;
  }

  IntCountMap outputCounts() {
    return outputCounts;
  }

  private static void checkId(String what, int id) {
    if (id < 0) {
      throw new IllegalArgumentException(what + " must be a token id >= 0, got " + id);
    }
  }
}
