package dev.pdserve.loadgen.dataset;

import java.util.SplittableRandom;

/**
 * Where synthetic token ids come from: uniformly from {@code [low, high)}. The default low bound
 * (32) skips ERNIE's special and reserved ids; the high bound is the model's vocabulary size.
 *
 * <p>Synthetic prompts sent as text render each id as one printable ASCII character (a letter or a
 * space, a function of the id), so equal id blocks give equal text: prefix sharing survives the
 * text form. On the byte tokenizer of the dummy presets one character is one token; real tokenizers
 * merge characters, so the server's token count (reported in the results) is lower.
 */
public record TokenSpace(int low, int high) {
  public static final int DEFAULT_LOW = 32;
  private static final String ALPHABET = " abcdefghijklmnopqrstuvwxyz";

  public TokenSpace {
    if (low < 0 || high <= low) {
      throw new IllegalArgumentException(
          "token id range must be 0 <= low < high, got [" + low + ", " + high + ")");
    }
  }

  public static TokenSpace forVocab(int vocabSize) {
    return new TokenSpace(DEFAULT_LOW, Math.max(DEFAULT_LOW + 1, vocabSize));
  }

  /** {@code n} ids drawn from this space with {@code rnd}. */
  public int[] draw(SplittableRandom rnd, int n) {
    int[] ids = new int[n];
    for (int i = 0; i < n; i++) {
      ids[i] = rnd.nextInt(low, high);
    }
    return ids;
  }

  /** The text form of {@code ids}: one character per id. */
  public static String render(int[] ids) {
    StringBuilder sb = new StringBuilder(ids.length);
    for (int id : ids) {
      sb.append(ALPHABET.charAt(Math.floorMod(id, ALPHABET.length())));
    }
    return sb.toString();
  }

  /** A random stream seeded by a (seed, key) pair: the same pair always gives the same numbers. */
  public static SplittableRandom random(long seed, long key) {
    return new SplittableRandom(mix(seed * 0x9E3779B97F4A7C15L + mix(key)));
  }

  private static long mix(long z) {
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }
}
