package dev.pdserve.model.vision;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.management.ThreadMXBean;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Random;
import java.util.zip.CRC32;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;

class ImageDecoderTest {
  static final ImageDecoder DECODER = new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS);

  /** An image file of {@code format} ("png", "jpeg", "gif", "bmp") written by ImageIO. */
  public static byte[] encode(BufferedImage img, String format) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try {
      if (!ImageIO.write(img, format, out)) {
        throw new IllegalStateException("no ImageIO writer for " + format);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out.toByteArray();
  }

  static BufferedImage rgb(int w, int h, long seed) {
    BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
    Random r = new Random(seed);
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        img.setRGB(x, y, r.nextInt(1 << 24));
      }
    }
    return img;
  }

  static InvalidImageException refused(byte[] bytes) {
    return assertThrows(InvalidImageException.class, () -> DECODER.decode(new EncodedImage(bytes)));
  }

  static void assertMentions(InvalidImageException e, String text) {
    assertTrue(e.getMessage().contains(text), "expected '" + text + "' in: " + e.getMessage());
  }

  @Test
  void pngDecodesToItsExactPixels() {
    BufferedImage src = rgb(33, 17, 1);
    RgbImage img = DECODER.decode(new EncodedImage(encode(src, "png")));
    assertEquals(33, img.width());
    assertEquals(17, img.height());
    for (int y = 0; y < 17; y++) {
      for (int x = 0; x < 33; x++) {
        int p = src.getRGB(x, y);
        assertEquals((p >> 16) & 0xff, img.value(x, y, 0), "red at " + x + "," + y);
        assertEquals((p >> 8) & 0xff, img.value(x, y, 1), "green at " + x + "," + y);
        assertEquals(p & 0xff, img.value(x, y, 2), "blue at " + x + "," + y);
      }
    }
  }

  @Test
  void jpegDecodesCloseToItsSource() {
    BufferedImage src = new BufferedImage(64, 48, BufferedImage.TYPE_INT_RGB);
    for (int y = 0; y < 48; y++) {
      for (int x = 0; x < 64; x++) {
        src.setRGB(x, y, (x * 4) << 16 | (y * 5) << 8 | 128); // smooth: JPEG keeps it closely
      }
    }
    RgbImage img = DECODER.decode(new EncodedImage(encode(src, "jpeg")));
    assertEquals(64, img.width());
    assertEquals(48, img.height());
    int worst = 0;
    for (int y = 0; y < 48; y++) {
      for (int x = 0; x < 64; x++) {
        worst = Math.max(worst, Math.abs(img.value(x, y, 0) - x * 4));
      }
    }
    assertTrue(worst < 16, "JPEG red channel strays " + worst + " levels from its source");
  }

  @Test
  void greyIsReplicatedAndAlphaIsCompositedOverWhite() {
    BufferedImage grey = new BufferedImage(4, 1, BufferedImage.TYPE_BYTE_GRAY);
    grey.getRaster().setPixels(0, 0, 4, 1, new int[] {0, 17, 128, 255});
    RgbImage g = DECODER.decode(new EncodedImage(encode(grey, "png")));
    assertEquals(17, g.value(1, 0, 0), "grey is taken as stored, not gamma-converted");
    assertEquals(17, g.value(1, 0, 2));
    assertEquals(128, g.value(2, 0, 1));

    BufferedImage rgba = new BufferedImage(2, 1, BufferedImage.TYPE_INT_ARGB);
    rgba.setRGB(0, 0, 0x00_10_20_30); // fully transparent: white
    rgba.setRGB(1, 0, 0x80_00_00_00); // half-transparent black
    RgbImage a = DECODER.decode(new EncodedImage(encode(rgba, "png")));
    assertEquals(255, a.value(0, 0, 0));
    assertEquals(127, a.value(1, 0, 0), "PIL's alpha_composite of black at alpha 128 over white");
  }

  @Test
  void emptyAndUnknownBytesAreRefused() {
    assertMentions(refused(new byte[0]), "image is empty");
    assertMentions(
        refused("hello, world".getBytes(StandardCharsets.US_ASCII)),
        "not a PNG or JPEG image (it starts with bytes 68 65 6c 6c 6f 2c 20 77)");
  }

  @Test
  void otherFormatsAreRefusedByName() {
    assertMentions(refused(encode(rgb(8, 8, 2), "gif")), "unsupported image format GIF");
    assertMentions(refused(encode(rgb(8, 8, 2), "bmp")), "unsupported image format BMP");
    byte[] webp = "RIFF\0\0\0\0WEBPVP8 ".getBytes(StandardCharsets.US_ASCII);
    assertMentions(refused(webp), "unsupported image format WebP; send PNG or JPEG");
  }

  @Test
  void brokenAndTruncatedFilesAreRefused() {
    byte[] png = encode(rgb(40, 40, 3), "png");
    byte[] garbage = Arrays.copyOf(png, png.length);
    for (int i = 40; i < garbage.length - 20; i++) {
      garbage[i] = (byte) (i * 7);
    }
    assertMentions(refused(garbage), "PNG image is");
    assertMentions(refused(Arrays.copyOf(png, png.length / 2)), "PNG image is truncated");
    assertMentions(refused(Arrays.copyOf(png, 20)), "PNG image is truncated");

    byte[] jpeg = encode(rgb(64, 64, 4), "jpeg");
    InvalidImageException cut = refused(Arrays.copyOf(jpeg, jpeg.length / 2));
    assertMentions(cut, "JPEG image is");
    assertTrue(
        cut.getMessage().contains("truncated") || cut.getMessage().contains("broken"),
        cut.getMessage());
  }

  /** A PNG signature and an IHDR chunk declaring {@code w × h}, then an empty IEND. */
  static byte[] pngHeader(int w, int h) {
    ByteBuffer ihdr = ByteBuffer.allocate(13).putInt(w).putInt(h);
    ihdr.put((byte) 8).put((byte) 2).put((byte) 0).put((byte) 0).put((byte) 0);
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.writeBytes(new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'});
    chunk(out, "IHDR", ihdr.array());
    chunk(out, "IEND", new byte[0]);
    return out.toByteArray();
  }

  private static void chunk(ByteArrayOutputStream out, String type, byte[] data) {
    byte[] t = type.getBytes(StandardCharsets.US_ASCII);
    out.writeBytes(ByteBuffer.allocate(4).putInt(data.length).array());
    out.writeBytes(t);
    out.writeBytes(data);
    CRC32 crc = new CRC32();
    crc.update(t);
    crc.update(data);
    out.writeBytes(ByteBuffer.allocate(4).putInt((int) crc.getValue()).array());
  }

  @Test
  void aDecompressionBombIsRefusedFromItsHeader() {
    // 100000 x 100000 declared in 57 bytes: refused before any pixel is decoded.
    InvalidImageException e = refused(pngHeader(100_000, 100_000));
    assertMentions(e, "PNG image is 100000x100000 = 10000000000 pixels, more than the limit");
    ImageDecoder small = new ImageDecoder(1000);
    InvalidImageException overSmall =
        assertThrows(
            InvalidImageException.class,
            () -> small.decode(new EncodedImage(encode(rgb(40, 30, 5), "png"))));
    assertMentions(overSmall, "40x30 = 1200 pixels, more than the limit of 1000 pixels");
  }

  @Test
  void aZeroSizeImageIsRefused() {
    assertMentions(refused(pngHeader(0, 16)), "PNG image has zero size (0x16 pixels)");
  }

  @Test
  void aHeaderClaimingMorePixelsThanTheFileCanHoldIsRefusedBeforeTheImageIsAllocated() {
    ThreadMXBean threads = (ThreadMXBean) ManagementFactory.getThreadMXBean();
    DECODER.decode(new EncodedImage(encode(rgb(8, 8, 1), "jpeg"))); // readers' classes loaded
    // 9000 x 9000 RGB (243 MB of samples) declared in 45 bytes: under the pixel limit, but no
    // deflate stream of 45 bytes holds that much.
    long before = threads.getCurrentThreadAllocatedBytes();
    InvalidImageException png = refused(pngHeader(9000, 9000));
    assertMentions(
        png,
        "PNG image is truncated or damaged: its header declares 9000x9000 pixels"
            + " (243009000 bytes of samples), more than its 45 bytes can hold");
    byte[] jpeg = encode(rgb(16, 16, 2), "jpeg");
    int sof = sof0(jpeg);
    ByteBuffer.wrap(jpeg, sof + 5, 4).putShort((short) 8000).putShort((short) 8000);
    InvalidImageException j = refused(jpeg);
    assertMentions(
        j,
        "JPEG image is truncated or damaged: its header declares 8000x8000 = 64000000 pixels,"
            + " more than its "
            + jpeg.length
            + " bytes can code");
    long allocated = threads.getCurrentThreadAllocatedBytes() - before;
    assertTrue(
        allocated < 16 << 20,
        "refusing two headers allocated " + allocated + " bytes: the image was allocated");
    RgbImage flat =
        DECODER.decode(
            new EncodedImage(
                encode(new BufferedImage(2000, 1500, BufferedImage.TYPE_INT_RGB), "png")));
    assertEquals(2000, flat.width(), "a large image that compresses well still decodes");
  }

  /** Offset of the SOF0 marker (FF C0) of a baseline JPEG. */
  private static int sof0(byte[] jpeg) {
    for (int i = 2; i + 1 < jpeg.length; i++) {
      if ((jpeg[i] & 0xff) == 0xff && (jpeg[i + 1] & 0xff) == 0xc0) {
        return i;
      }
    }
    throw new AssertionError("no SOF0 marker");
  }
}
