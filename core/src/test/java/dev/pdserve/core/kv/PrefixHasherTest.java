package dev.pdserve.core.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.pdserve.model.vision.EncodedImage;
import dev.pdserve.model.vision.ImageDigest;
import dev.pdserve.model.vision.PromptImage;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Block hashes of prompts with images: a block that holds an image's placeholders mixes in the
 * image's digest and where the block cuts into it; blocks without image tokens hash as text, and a
 * text prompt hashes exactly as it did before images existed.
 */
class PrefixHasherTest {
  private static final int BS = 16;
  private static final int PLACEHOLDER = 9;
  private final PrefixHasher hasher = PrefixHasher.text("tiny|preset:tiny:seed42", BS);

  private static int[] tokens(int n) {
    int[] t = new int[n];
    for (int i = 0; i < n; i++) {
      t[i] = 3 + i * 7 % 250;
    }
    return t;
  }

  /** {@code n} tokens with an image's {@code count} placeholders from {@code start}. */
  private static int[] withPlaceholders(int n, int start, int count) {
    int[] t = tokens(n);
    Arrays.fill(t, start, start + count, PLACEHOLDER);
    return t;
  }

  private static ImageDigest digest(int seed) {
    byte[] d = new byte[ImageDigest.LENGTH];
    Arrays.fill(d, (byte) seed);
    return new ImageDigest(d);
  }

  private static PromptImage image(int seed, int start, int h, int w) {
    return new PromptImage(
        new EncodedImage(new byte[] {(byte) seed}), "image/png", digest(seed), start, h, w);
  }

  @Test
  void aTextPromptHashesExactlyAsBeforeImages() {
    int[] t = tokens(50);
    // Computed with the hasher as it was before images (commit 6b841e1).
    long[] before = {6381319906806602109L, -1536768328668938470L, 997395991690469255L};
    assertArrayEquals(before, hasher.hashes(t), "text block hashes changed");
    assertArrayEquals(before, hasher.hashes(t, List.of()), "no images: the text hashes");
    PrefixHasher.Blocks blocks = hasher.blocks(t, List.of());
    for (int b = 0; b < blocks.length(); b++) {
      assertNull(blocks.imageKey(b), "a text block has no image key");
    }
  }

  @Test
  void theSameTextWithAnotherImageDiffersFromTheFirstBlockHoldingItOn() {
    int[] t = withPlaceholders(64, 20, 24); // placeholders 20..43: blocks 1 and 2
    long[] x = hasher.hashes(t, List.of(image(1, 20, 4, 6)));
    long[] y = hasher.hashes(t, List.of(image(2, 20, 4, 6)));
    assertEquals(4, x.length);
    assertEquals(x[0], y[0], "block 0 holds no image token: shared");
    assertEquals(hasher.hashes(t)[0], x[0], "and hashed as text");
    for (int b = 1; b < 4; b++) {
      assertNotEquals(x[b], y[b], "block " + b + " is at or after the image: not shared");
    }
    assertNotEquals(hasher.hashes(t)[1], x[1], "an image block is not its placeholders' text");
  }

  @Test
  void theSameImageInTheSamePlaceHashesTheSame() {
    int[] t = withPlaceholders(64, 20, 24);
    assertArrayEquals(
        hasher.hashes(t, List.of(image(1, 20, 4, 6))),
        hasher.hashes(t.clone(), List.of(image(1, 20, 4, 6))),
        "router and nodes must agree");
  }

  @Test
  void twoImagesInOneBlockAndTheirOrderAreBothSeen() {
    int[] t = withPlaceholders(48, 2, 4);
    Arrays.fill(t, 8, 12, PLACEHOLDER); // a second image of 4 in block 0
    List<PromptImage> ab = List.of(image(1, 2, 2, 2), image(2, 8, 2, 2));
    List<PromptImage> ba = List.of(image(2, 2, 2, 2), image(1, 8, 2, 2));
    PrefixHasher.Blocks blocks = hasher.blocks(t, ab);
    assertEquals(2 * (ImageDigest.LENGTH + 8), blocks.imageKey(0).length, "both images keyed");
    assertNull(blocks.imageKey(1), "block 1 holds no image token");
    assertNotEquals(hasher.hashes(t, ab)[0], hasher.hashes(t, ba)[0], "the order is seen");
  }

  @Test
  void anImageWithoutADigestCannotBeHashed() {
    int[] t = withPlaceholders(32, 2, 4);
    PromptImage none = image(1, 2, 2, 2).withDigest(null);
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> hasher.hashes(t, List.of(none)));
    assertEquals("image 0 of the prompt has no digest", e.getMessage());
  }
}
