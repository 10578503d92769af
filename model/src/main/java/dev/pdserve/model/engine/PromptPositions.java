package dev.pdserve.model.engine;

import java.util.List;

/**
 * ERNIE-4.5-VL's 3-D rotary positions (t, h, w) of a prompt. Text tokens sit at (p, p, p), p
 * counting up by one. An image whose merged grid is H × W and whose first placeholder comes when
 * the count is at s puts its token (r, c) at (s, s + r, s + c); the count then goes on at s +
 * max(H, W). Image start and end tokens are text tokens here. Generated token i (its index in the
 * sequence, prompt included) sits at {@code i + delta} on every axis, where {@code delta = max
 * position + 1 − prompt length} (0 for text: a text-only prompt is at 0..n−1, plain 1-D RoPE).
 */
public final class PromptPositions {
  private final int[] positions;
  private final int delta;

  private PromptPositions(int[] positions, int delta) {
    this.positions = positions;
    this.delta = delta;
  }

  /**
   * @param length the prompt's tokens
   * @param images the images in prompt order, not overlapping
   */
  public static PromptPositions of(int length, List<ImageSpan> images) {
    int[] pos = new int[length * 3];
    int next = 0;
    int max = -1;
    int i = 0;
    int k = 0;
    while (i < length) {
      ImageSpan span = k < images.size() ? images.get(k) : null;
      if (span != null && span.start() == i) {
        if (span.end() > length) {
          throw new IllegalArgumentException(
              "image "
                  + k
                  + " spans tokens "
                  + span.start()
                  + ".."
                  + span.end()
                  + " past the prompt's "
                  + length);
        }
        for (int r = 0; r < span.gridH(); r++) {
          for (int c = 0; c < span.gridW(); c++) {
            int t = span.start() + r * span.gridW() + c;
            set(pos, t, next, next + r, next + c);
          }
        }
        max = Math.max(max, next + Math.max(span.gridH(), span.gridW()) - 1);
        next += Math.max(span.gridH(), span.gridW());
        i = span.end();
        k++;
      } else {
        if (span != null && span.start() < i) {
          throw new IllegalArgumentException(
              "image " + k + " starts at token " + span.start() + ", inside what came before it");
        }
        set(pos, i, next, next, next);
        max = Math.max(max, next);
        next++;
        i++;
      }
    }
    if (k != images.size()) {
      throw new IllegalArgumentException(
          "image "
              + k
              + " starts at token "
              + images.get(k).start()
              + ", past the prompt's "
              + length);
    }
    return new PromptPositions(pos, max + 1 - length);
  }

  private static void set(int[] pos, int token, int t, int h, int w) {
    pos[token * 3] = t;
    pos[token * 3 + 1] = h;
    pos[token * 3 + 2] = w;
  }

  public int length() {
    return positions.length / 3;
  }

  /** Position of prompt token {@code token} on {@code axis} (Rope.T, H or W). */
  public int get(int token, int axis) {
    return positions[token * 3 + axis];
  }

  /** Positions of prompt tokens {@code [from, to)}, {@code [to − from, 3]} row-major. */
  public int[] slice(int from, int to) {
    int[] out = new int[(to - from) * 3];
    System.arraycopy(positions, from * 3, out, 0, out.length);
    return out;
  }

  /** What a generated token's index adds to its position on every axis. */
  public int delta() {
    return delta;
  }

  /** The (t, h, w) of the token at sequence index {@code index} after the prompt. */
  public int[] decode(int index) {
    int p = index + delta;
    return new int[] {p, p, p};
  }
}
