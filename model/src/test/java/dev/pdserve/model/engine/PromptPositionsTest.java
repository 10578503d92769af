package dev.pdserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.vision.PatchedImage;
import java.util.List;
import org.junit.jupiter.api.Test;

class PromptPositionsTest {
  /** An image whose merged grid is {@code h × w} (tiny: merge 2, 588 values per patch). */
  static PatchedImage image(int h, int w) {
    return new PatchedImage(2 * h, 2 * w, 2, 588, new float[4 * h * w * 588]);
  }

  static void assertAt(PromptPositions p, int token, int t, int h, int w) {
    assertArrayEquals(
        new int[] {t, h, w},
        new int[] {p.get(token, Rope.T), p.get(token, Rope.H), p.get(token, Rope.W)},
        "(t, h, w) of token " + token);
  }

  @Test
  void aTextPromptIsAtZeroToNMinusOneWithNoDelta() {
    PromptPositions p = PromptPositions.of(7, List.of());
    for (int i = 0; i < 7; i++) {
      assertAt(p, i, i, i, i);
    }
    assertEquals(0, p.delta());
    assertArrayEquals(new int[] {9, 9, 9}, p.decode(9));
  }

  @Test
  void anImageIsAGridFromItsStartAndTextGoesOnAfterItsLongerSide() {
    // tokens: 0..2 text (the last is <|IMAGE_START|>), 3..8 a 2 x 3 image, 9..10 text
    PromptPositions p = PromptPositions.of(11, List.of(new ImageSpan(3, image(2, 3))));
    assertAt(p, 2, 2, 2, 2);
    assertAt(p, 3, 3, 3, 3); // (r, c) = (0, 0)
    assertAt(p, 4, 3, 3, 4); // (0, 1)
    assertAt(p, 5, 3, 3, 5); // (0, 2)
    assertAt(p, 6, 3, 4, 3); // (1, 0)
    assertAt(p, 8, 3, 4, 5); // (1, 2)
    assertAt(p, 9, 6, 6, 6); // 3 + max(2, 3)
    assertAt(p, 10, 7, 7, 7);
    // max position 7, 11 tokens: generated token i is at i - 3
    assertEquals(-3, p.delta());
    assertArrayEquals(new int[] {8, 8, 8}, p.decode(11));
  }

  @Test
  void twoImagesEachStartWhereTheTextBeforeThemEnds() {
    // 0 text, 1..4 a 2 x 2 image, 5..6 text, 7..12 a 3 x 2 image, 13 text
    PromptPositions p =
        PromptPositions.of(
            14, List.of(new ImageSpan(1, image(2, 2)), new ImageSpan(7, image(3, 2))));
    assertAt(p, 1, 1, 1, 1);
    assertAt(p, 4, 1, 2, 2);
    assertAt(p, 5, 3, 3, 3);
    assertAt(p, 6, 4, 4, 4);
    assertAt(p, 7, 5, 5, 5);
    assertAt(p, 8, 5, 5, 6);
    assertAt(p, 12, 5, 7, 6);
    assertAt(p, 13, 8, 8, 8);
    assertEquals(9 - 14, p.delta());
    assertArrayEquals(new int[] {1, 1, 1, 1, 1, 2}, p.slice(1, 3));
  }

  @Test
  void textPositionsGiveExactlyTheOneDimensionalRopeAngles() {
    for (String preset : List.of("tiny", "small", "ernie-4.5-vl-28b-a3b")) {
      ModelConfig cfg = ModelPresets.get(preset);
      Rope rope = new Rope(cfg);
      float[] cos1 = new float[rope.half()];
      float[] sin1 = new float[rope.half()];
      float[] cos3 = new float[rope.half()];
      float[] sin3 = new float[rope.half()];
      for (long pos : new long[] {0, 1, 7, 1000, 131071}) {
        rope.fill(pos, cos1, sin1, 0);
        rope.fill(pos, pos, pos, cos3, sin3, 0);
        assertArrayEquals(cos1, cos3, preset + ": cos at text position " + pos);
        assertArrayEquals(sin1, sin3, preset + ": sin at text position " + pos);
      }
    }
  }

  @Test
  void ropePairsAlternateHeightAndWidthThenTheLastAreTemporal() {
    Rope real = new Rope(ModelPresets.get("ernie-4.5-vl-28b-a3b")); // 64 pairs, 20 temporal
    assertEquals(Rope.H, real.axis(0));
    assertEquals(Rope.W, real.axis(1));
    assertEquals(Rope.W, real.axis(43));
    assertEquals(Rope.T, real.axis(44));
    assertEquals(Rope.T, real.axis(63));
    float[] cos = new float[64];
    float[] sin = new float[64];
    real.fill(0, 5, 0, cos, sin, 0); // only height moves: even pairs below 44 rotate
    assertEquals(1f, cos[1], "pair 1 (width) does not rotate");
    assertEquals(1f, cos[50], "pair 50 (temporal) does not rotate");
    assertEquals((float) Math.cos(5.0), cos[0], "pair 0 (height) rotates by 5 rad");
  }
}
