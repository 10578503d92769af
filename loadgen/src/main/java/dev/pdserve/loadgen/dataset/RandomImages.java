package dev.pdserve.loadgen.dataset;

import java.awt.image.BufferedImage;
import java.awt.image.DataBufferByte;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.SplittableRandom;
import javax.imageio.ImageIO;

/**
 * Synthetic PNG images: a gradient between four random corner colours with random noise on top (so
 * no two images are alike and none compresses to nothing), a pure function of the seed, the request
 * index and the image's place in the request.
 */
public final class RandomImages {
  private static final int NOISE = 24;

  private final long seed;
  private final int width;
  private final int height;

  public RandomImages(long seed, int width, int height) {
    this.seed = seed;
    this.width = width;
    this.height = height;
  }

  /** Image {@code k} of request {@code index}. */
  public BenchImage image(long index, int k) {
    SplittableRandom rnd =
        TokenSpace.random(TokenSpace.random(seed, 5_000_000_000_000L + index).nextLong(), k);
    int[][] corners = new int[4][3];
    for (int[] c : corners) {
      for (int ch = 0; ch < 3; ch++) {
        c[ch] = rnd.nextInt(256);
      }
    }
    BufferedImage img = new BufferedImage(width, height, BufferedImage.TYPE_3BYTE_BGR);
    byte[] bgr = ((DataBufferByte) img.getRaster().getDataBuffer()).getData();
    for (int y = 0; y < height; y++) {
      double fy = height == 1 ? 0 : (double) y / (height - 1);
      for (int x = 0; x < width; x++) {
        double fx = width == 1 ? 0 : (double) x / (width - 1);
        int o = (y * width + x) * 3;
        for (int ch = 0; ch < 3; ch++) {
          double top = corners[0][ch] * (1 - fx) + corners[1][ch] * fx;
          double bottom = corners[2][ch] * (1 - fx) + corners[3][ch] * fx;
          int v = (int) (top * (1 - fy) + bottom * fy) + rnd.nextInt(-NOISE, NOISE + 1);
          bgr[o + 2 - ch] = (byte) Math.max(0, Math.min(255, v));
        }
      }
    }
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try {
      if (!ImageIO.write(img, "png", out)) {
        throw new IllegalStateException("this JDK has no ImageIO PNG writer");
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return new BenchImage("image/png", out.toByteArray(), width, height);
  }
}
