package dev.pdserve.loadgen;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.loadgen.dataset.BenchImage;
import dev.pdserve.loadgen.dataset.BenchRequest;
import dev.pdserve.loadgen.dataset.Dataset;
import dev.pdserve.loadgen.dataset.DatasetConfig;
import dev.pdserve.loadgen.dataset.Datasets;
import dev.pdserve.loadgen.dataset.ImageOptions;
import dev.pdserve.loadgen.dataset.PromptForm;
import dev.pdserve.loadgen.dataset.TokenSpace;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;

/**
 * {@code --dataset-name random-mm}: each request has the asked number of PNG images of the asked
 * size, and text and images are a function of the seed and the request's index.
 */
class RandomMultimodalDatasetTest {
  private static final TokenSpace TOKENS = TokenSpace.forVocab(288);

  static DatasetConfig config(int images, int w, int h) {
    return DatasetConfig.random(24, 6)
        .withName("random-mm")
        .withImages(new ImageOptions(images, w, h));
  }

  private static Dataset open(DatasetConfig cfg, long seed) {
    return Datasets.open(cfg, TOKENS, PromptForm.TOKEN_IDS, seed, 1024);
  }

  @Test
  void everyRequestHasTheAskedImagesOfTheAskedSize() throws IOException {
    Dataset ds = open(config(3, 70, 41), 5);
    for (long i = -2; i < 6; i++) {
      BenchRequest r = ds.get(i);
      assertEquals(3, r.images().size(), "images of request " + i);
      assertNotNull(r.promptText(), "a multimodal prompt travels as text");
      assertEquals(r.promptTokens(), r.promptText().length());
      for (BenchImage img : r.images()) {
        assertEquals("image/png", img.mediaType());
        BufferedImage decoded = ImageIO.read(new ByteArrayInputStream(img.data()));
        assertNotNull(decoded, "request " + i + ": the bytes are a PNG ImageIO reads");
        assertEquals(70, decoded.getWidth(), "width of an image of request " + i);
        assertEquals(41, decoded.getHeight(), "height of an image of request " + i);
        assertEquals(70, img.width());
        assertEquals(41, img.height());
      }
    }
  }

  @Test
  void theSameSeedGivesTheSameImagesAndAnotherSeedOrIndexOthers() {
    DatasetConfig cfg = config(2, 32, 32);
    Dataset a = open(cfg, 11);
    Dataset again = open(cfg, 11);
    Dataset other = open(cfg, 12);
    Set<String> seen = new HashSet<>();
    for (long i = 0; i < 5; i++) {
      BenchRequest x = a.get(i);
      BenchRequest y = again.get(i);
      assertEquals(x.promptText(), y.promptText(), "text of request " + i);
      for (int k = 0; k < 2; k++) {
        assertArrayEquals(
            x.images().get(k).data(),
            y.images().get(k).data(),
            "image " + k + " of request " + i + " with the same seed");
        assertFalse(
            Arrays.equals(x.images().get(k).data(), other.get(i).images().get(k).data()),
            "image " + k + " of request " + i + " with another seed");
        assertTrue(
            seen.add(Arrays.toString(x.images().get(k).data())),
            "image " + k + " of request " + i + " repeats an earlier image");
      }
    }
  }

  @Test
  void theImagesTakePartOfTheContextAndBadOptionsNameTheFlag() {
    IllegalArgumentException tooBig =
        assertThrows(IllegalArgumentException.class, () -> open(config(4, 896, 896), 0));
    assertTrue(
        tooBig.getMessage().contains("--images-per-request 4 of --image-size 896x896"),
        tooBig.getMessage());
    IllegalArgumentException none =
        assertThrows(IllegalArgumentException.class, () -> open(config(0, 64, 64), 0));
    assertTrue(
        none.getMessage().contains("--images-per-request must be in 1..64"), none.getMessage());
    IllegalArgumentException size =
        assertThrows(IllegalArgumentException.class, () -> ImageOptions.parseSize("big"));
    assertTrue(size.getMessage().contains("--image-size takes WIDTHxHEIGHT"), size.getMessage());
    assertArrayEquals(new int[] {640, 480}, ImageOptions.parseSize("640x480"));
    assertTrue(open(config(1, 64, 48), 0).describe().contains("image_size=64x48"));
  }

  @Test
  void textDatasetsHaveNoImages() {
    Dataset ds = open(DatasetConfig.random(16, 4), 1);
    assertTrue(ds.get(0).images().isEmpty());
  }
}
