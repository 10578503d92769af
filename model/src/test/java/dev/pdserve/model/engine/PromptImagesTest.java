package dev.pdserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.ImageTokenIds;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.config.VisionConfig;
import dev.pdserve.model.tokenizer.ByteTokenizer;
import dev.pdserve.model.tokenizer.ChatTemplate;
import dev.pdserve.model.vision.EncodedImage;
import dev.pdserve.model.vision.ImageDecoder;
import dev.pdserve.model.vision.ImageDigest;
import dev.pdserve.model.vision.ImagePreprocessor;
import dev.pdserve.model.vision.InvalidImageException;
import dev.pdserve.model.vision.PromptImage;
import dev.pdserve.model.vision.TestImages;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A node rebuilding a rendered prompt from its token ids and images: equal to what the router's
 * renderer made, and refused (naming the image) wherever ids, images and grids do not agree.
 */
class PromptImagesTest {
  static final VisionConfig VISION = ModelPresets.get("tiny").vision().orElseThrow();
  static final ImageTokenIds IDS = VISION.tokens();
  static final PromptRenderer RENDERER =
      new PromptRenderer(ByteTokenizer.create(), ChatTemplate.ernie()).withVision(VISION);
  static final ImagePreprocessor PREPROCESSOR =
      new ImagePreprocessor(VISION, new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS));
  // 56 x 56: 2 x 2 = 4 tokens; 84 x 56: 2 rows x 3 columns = 6.
  static final EncodedImage SQUARE = TestImages.png(56, 56, 1);
  static final EncodedImage WIDE = TestImages.png(84, 56, 2);

  static final RenderedPrompt TWO =
      RENDERER.renderWithImages(
          new Prompt.Text(
              "a " + ChatTemplate.IMAGE_SLOT + " b " + ChatTemplate.IMAGE_SLOT + ".",
              List.of(SQUARE, WIDE)),
          false);

  /** The images as a router sends them for {@code r}; {@code files} in prompt order. */
  static List<PromptImage> wire(RenderedPrompt r, EncodedImage... files) {
    List<PromptImage> out = new ArrayList<>();
    for (int k = 0; k < files.length; k++) {
      ImageSpan s = r.images().get(k);
      out.add(
          new PromptImage(
              files[k],
              "image/png",
              ImageDigest.of(files[k], VISION),
              s.start(),
              s.gridH(),
              s.gridW()));
    }
    return out;
  }

  static String refusal(int[] ids, List<PromptImage> images) {
    return assertThrows(
            InvalidImageException.class,
            () -> PromptImages.check(ids, images, VISION).render(PREPROCESSOR))
        .getMessage();
  }

  @Test
  void theRebuiltPromptIsTheRenderersOwn() {
    PromptImages checked = PromptImages.check(TWO.ids(), wire(TWO, SQUARE, WIDE), VISION);
    RenderedPrompt rebuilt = checked.render(PREPROCESSOR);
    assertArrayEquals(TWO.ids(), rebuilt.ids());
    assertEquals(2, rebuilt.images().size());
    for (int k = 0; k < 2; k++) {
      ImageSpan want = TWO.images().get(k);
      ImageSpan got = rebuilt.images().get(k);
      assertEquals(want.start(), got.start(), "image " + k + " start");
      assertEquals(want.gridH(), got.gridH());
      assertEquals(want.gridW(), got.gridW());
      assertArrayEquals(want.image().patches(), got.image().patches(), "image " + k + " patches");
    }
    assertEquals(TWO.positions().delta(), rebuilt.positions().delta());
    assertEquals(
        List.of(ImageDigest.of(SQUARE, VISION), ImageDigest.of(WIDE, VISION)), checked.digests());
  }

  @Test
  void aMissingDigestIsComputedAndAWrongOneRefused() {
    List<PromptImage> given = wire(TWO, SQUARE, WIDE);
    List<PromptImage> noDigest = List.of(given.get(0).withDigest(null), given.get(1));
    assertEquals(
        ImageDigest.of(SQUARE, VISION),
        PromptImages.check(TWO.ids(), noDigest, VISION).digests().get(0));
    List<PromptImage> swapped =
        List.of(given.get(0), given.get(1).withDigest(ImageDigest.of(SQUARE, VISION)));
    String m = refusal(TWO.ids(), swapped);
    assertTrue(m.startsWith("images[1]: digest "), m);
    assertTrue(m.contains("does not match the image's bytes"), m);
  }

  @Test
  void aGridTheImageDoesNotDecodeToIsRefused() {
    // The wide image's 6 placeholders claimed as 3 x 2 instead of 2 x 3.
    List<PromptImage> given = wire(TWO, SQUARE, WIDE);
    PromptImage w = given.get(1);
    PromptImage transposed =
        new PromptImage(w.image(), w.mediaType(), null, w.placeholderStart(), 3, 2);
    assertEquals(
        "images[1]: the image preprocesses to a 2x3 merged grid, the request says 3x2",
        refusal(TWO.ids(), List.of(given.get(0), transposed)));
  }

  @Test
  void placeholdersNotWhereTheImageSaysAreRefused() {
    List<PromptImage> given = wire(TWO, SQUARE, WIDE);
    PromptImage s = given.get(0);
    PromptImage late =
        new PromptImage(s.image(), "", null, s.placeholderStart() + 1, s.gridH(), s.gridW());
    String m = refusal(TWO.ids(), List.of(late, given.get(1)));
    assertTrue(m.startsWith("images[0]: expected <|IMAGE_START|> at token "), m);

    PromptImage fewer = new PromptImage(s.image(), "", null, s.placeholderStart(), 1, 2);
    String n = refusal(TWO.ids(), List.of(fewer, given.get(1)));
    assertTrue(n.startsWith("images[0]: expected <|IMAGE_START|>"), n);

    PromptImage past = new PromptImage(s.image(), "", null, TWO.ids().length - 2, 2, 2);
    assertTrue(refusal(TWO.ids(), List.of(past)).startsWith("images[0]: its 4 placeholders"));

    String order = refusal(TWO.ids(), List.of(given.get(1), given.get(0)));
    assertTrue(order.startsWith("images[1]: placeholders from token "), order);
  }

  @Test
  void aPlaceholderRunWithoutItsImageIsRefused() {
    String m = refusal(TWO.ids(), wire(TWO, SQUARE));
    assertEquals(
        "images: the prompt has 2 runs of image placeholders but 1 image was given; give one"
            + " image per run",
        m);
    int[] stray = TWO.ids().clone();
    stray[0] = IDS.placeholder();
    assertTrue(refusal(stray, wire(TWO, SQUARE, WIDE)).startsWith("images: the prompt has 3 runs"));
  }

  @Test
  void anImageThatCannotBeDecodedIsRefusedNamingIt() {
    List<PromptImage> given = wire(TWO, SQUARE, WIDE);
    PromptImage w = given.get(1);
    PromptImage broken =
        new PromptImage(
            new EncodedImage(new byte[] {1, 2, 3}),
            "image/png",
            null,
            w.placeholderStart(),
            w.gridH(),
            w.gridW());
    String m = refusal(TWO.ids(), List.of(given.get(0), broken));
    assertTrue(m.startsWith("images[1]: not a PNG or JPEG image"), m);
  }
}
