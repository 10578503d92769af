package dev.pdserve.model.vision;

import java.awt.color.ColorSpace;
import java.awt.image.BufferedImage;
import java.awt.image.ColorModel;
import java.awt.image.ComponentColorModel;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.ByteArrayInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.stream.ImageInputStream;
import javax.imageio.stream.MemoryCacheImageInputStream;

/**
 * Decodes PNG and JPEG files into 8-bit RGB with the JDK's ImageIO, refusing anything else with an
 * {@link InvalidImageException}. The dimensions are read from the header first and an image of more
 * than {@code maxPixels} pixels is refused before any pixel is decoded (a small file can declare a
 * huge image: a decompression bomb). Below that limit a header still cannot claim more pixels than
 * the file's bytes can hold ({@link #MAX_DEFLATE_RATIO} bytes of samples per byte of a PNG, {@link
 * #MAX_JPEG_PIXELS_PER_BYTE} pixels per byte of a JPEG): a few bytes declaring millions of pixels
 * are refused as truncated before ImageIO allocates the image. Nothing touches the disk.
 *
 * <p>Colour conversion follows what the released image processor does with PIL ({@code
 * convert_to_rgb} in transformers): RGB and grey are taken as they are (grey replicated into the
 * three channels), a palette is looked up, and an alpha channel is composited over white with PIL's
 * integer arithmetic. 16-bit samples keep their high byte. EXIF orientation is not applied (neither
 * does the released processor). JPEG decoders may differ from libjpeg-turbo's by one level in some
 * pixels; PNG decodes exactly.
 */
public final class ImageDecoder {
  /** PIL's own decompression-bomb bound ({@code Image.MAX_IMAGE_PIXELS}). */
  public static final long DEFAULT_MAX_PIXELS = 89_478_485L;

  /**
   * Deflate's best ratio: one 258-byte match in two bits. A PNG's samples (with one filter byte per
   * row) are never more than this many times its compressed data.
   */
  public static final long MAX_DEFLATE_RATIO = 1032;

  /**
   * A JPEG codes each 8×8 block of its full-resolution component with at least one bit (a Huffman
   * code of its DC coefficient), so it holds at most 64 × 8 pixels per byte.
   */
  public static final long MAX_JPEG_PIXELS_PER_BYTE = 512;

  private static final byte[] PNG_SIGNATURE = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

  private final long maxPixels;

  /**
   * @param maxPixels the largest width × height accepted
   */
  public ImageDecoder(long maxPixels) {
    if (maxPixels < 1) {
      throw new IllegalArgumentException("maxPixels must be >= 1, got " + maxPixels);
    }
    this.maxPixels = maxPixels;
  }

  public long maxPixels() {
    return maxPixels;
  }

  /**
   * The image's pixels.
   *
   * @throws InvalidImageException saying what is wrong: empty, not PNG or JPEG, broken, truncated,
   *     of zero size, or over the pixel limit
   */
  public RgbImage decode(EncodedImage image) {
    byte[] bytes = image.raw();
    if (bytes.length == 0) {
      throw new InvalidImageException("image is empty (0 bytes)");
    }
    String format = format(bytes);
    if (format.equals("png")) {
      checkPngHeader(bytes);
    }
    Iterator<ImageReader> readers = ImageIO.getImageReadersByFormatName(format);
    if (!readers.hasNext()) {
      throw new IllegalStateException("this JDK has no ImageIO reader for " + format);
    }
    ImageReader reader = readers.next();
    String kind = format.toUpperCase(Locale.ROOT);
    List<String> warnings = new ArrayList<>();
    reader.addIIOReadWarningListener((source, warning) -> warnings.add(warning));
    try (ImageInputStream in = new MemoryCacheImageInputStream(new ByteArrayInputStream(bytes))) {
      reader.setInput(in, true, true);
      int width;
      int height;
      try {
        width = reader.getWidth(0);
        height = reader.getHeight(0);
      } catch (IOException | RuntimeException e) {
        throw broken(kind, "header", e);
      }
      if (width <= 0 || height <= 0) {
        throw new InvalidImageException(
            kind + " image has zero size (" + width + "x" + height + " pixels)");
      }
      long pixels = (long) width * height;
      if (pixels > maxPixels) {
        throw new InvalidImageException(
            kind
                + " image is "
                + width
                + "x"
                + height
                + " = "
                + pixels
                + " pixels, more than the limit of "
                + maxPixels
                + " pixels");
      }
      if (format.equals("jpeg") && pixels > MAX_JPEG_PIXELS_PER_BYTE * bytes.length) {
        throw new InvalidImageException(
            "JPEG image is truncated or damaged: its header declares "
                + width
                + "x"
                + height
                + " = "
                + pixels
                + " pixels, more than its "
                + bytes.length
                + " bytes can code (at most "
                + MAX_JPEG_PIXELS_PER_BYTE
                + " pixels per byte)");
      }
      BufferedImage decoded;
      try {
        decoded = reader.read(0);
      } catch (IOException | RuntimeException e) {
        throw broken(kind, "data", e);
      }
      if (!warnings.isEmpty()) {
        throw new InvalidImageException(
            kind + " image is truncated or damaged: " + String.join("; ", warnings));
      }
      return toRgb(decoded);
    } catch (IOException e) {
      throw new InvalidImageException("cannot read the " + kind + " image: " + e.getMessage(), e);
    } finally {
      reader.dispose();
    }
  }

  /**
   * A PNG's IHDR declares its size in plain bytes; ImageIO reports a zero size only as a generic
   * header error, so zero is caught here. So is a size whose samples the file cannot hold even at
   * deflate's best ratio: ImageIO would allocate the whole image before it found the data missing.
   */
  private void checkPngHeader(byte[] b) {
    if (b.length >= 24 && b[12] == 'I' && b[13] == 'H' && b[14] == 'D' && b[15] == 'R') {
      long w = ByteBuffer.wrap(b, 16, 4).getInt() & 0xffffffffL;
      long h = ByteBuffer.wrap(b, 20, 4).getInt() & 0xffffffffL;
      if (w == 0 || h == 0) {
        throw new InvalidImageException("PNG image has zero size (" + w + "x" + h + " pixels)");
      }
      int channels = b.length >= 26 ? pngChannels(b[25]) : 0;
      if (channels == 0 || w > maxPixels || h > maxPixels || w * h > maxPixels) {
        return; // ImageIO refuses the colour type; the pixel limit is checked (and named) later
      }
      long bitsPerPixel = (long) channels * (b[24] & 0xff);
      long samples = h * (1 + (w * bitsPerPixel + 7) / 8); // a filter byte per row
      if (samples > MAX_DEFLATE_RATIO * b.length) {
        throw new InvalidImageException(
            "PNG image is truncated or damaged: its header declares "
                + w
                + "x"
                + h
                + " pixels ("
                + samples
                + " bytes of samples), more than its "
                + b.length
                + " bytes can hold (at most "
                + MAX_DEFLATE_RATIO
                + " bytes per compressed byte)");
      }
    }
  }

  /** Samples per pixel of a PNG colour type (grey, RGB, palette, grey + alpha, RGBA); 0 unknown. */
  private static int pngChannels(byte colourType) {
    return switch (colourType) {
      case 0, 3 -> 1;
      case 2 -> 3;
      case 4 -> 2;
      case 6 -> 4;
      default -> 0;
    };
  }

  private static InvalidImageException broken(String kind, String part, Exception e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof EOFException) {
        return new InvalidImageException(
            kind + " image is truncated (its " + part + " ends early)", e);
      }
    }
    StringBuilder why = new StringBuilder();
    for (Throwable t = e; t != null; t = t.getCause()) {
      String m = t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
      if (why.indexOf(m) < 0) {
        why.append(why.length() == 0 ? "" : ": ").append(m);
      }
    }
    return new InvalidImageException(kind + " image is broken (" + part + "): " + why, e);
  }

  /** "png" or "jpeg" from the magic bytes; anything else is refused. */
  private static String format(byte[] b) {
    if (startsWith(b, PNG_SIGNATURE)) {
      return "png";
    }
    if (b.length >= 3 && (b[0] & 0xff) == 0xff && (b[1] & 0xff) == 0xd8 && (b[2] & 0xff) == 0xff) {
      return "jpeg";
    }
    String other = otherFormat(b);
    if (other != null) {
      throw new InvalidImageException("unsupported image format " + other + "; send PNG or JPEG");
    }
    StringBuilder hex = new StringBuilder();
    for (int i = 0; i < Math.min(8, b.length); i++) {
      hex.append(String.format(" %02x", b[i] & 0xff));
    }
    throw new InvalidImageException("not a PNG or JPEG image (it starts with bytes" + hex + ")");
  }

  private static String otherFormat(byte[] b) {
    if (startsWith(b, "GIF8".getBytes(StandardCharsets.US_ASCII))) {
      return "GIF";
    }
    if (b.length >= 12
        && startsWith(b, "RIFF".getBytes(StandardCharsets.US_ASCII))
        && b[8] == 'W'
        && b[9] == 'E'
        && b[10] == 'B'
        && b[11] == 'P') {
      return "WebP";
    }
    if (b.length >= 4
        && ((b[0] == 'I' && b[1] == 'I' && b[2] == '*' && b[3] == 0)
            || (b[0] == 'M' && b[1] == 'M' && b[2] == 0 && b[3] == '*'))) {
      return "TIFF";
    }
    if (b.length >= 2 && b[0] == 'B' && b[1] == 'M') {
      return "BMP";
    }
    return null;
  }

  private static boolean startsWith(byte[] b, byte[] prefix) {
    if (b.length < prefix.length) {
      return false;
    }
    for (int i = 0; i < prefix.length; i++) {
      if (b[i] != prefix[i]) {
        return false;
      }
    }
    return true;
  }

  /** 8-bit RGB, alpha composited over white as transformers' {@code convert_to_rgb} does. */
  private static RgbImage toRgb(BufferedImage img) {
    int w = img.getWidth();
    int h = img.getHeight();
    byte[] out = new byte[w * h * 3];
    ColorModel cm = img.getColorModel();
    Raster raster = img.getRaster();
    boolean alpha = cm.hasAlpha();
    if (cm instanceof ComponentColorModel
        && (cm.getColorSpace().getType() == ColorSpace.TYPE_GRAY || cm.getColorSpace().isCS_sRGB())
        && !cm.isAlphaPremultiplied()) {
      // Samples as stored: ColorModel.getRGB would gamma-convert linear grey, which PIL does not.
      int bands = raster.getNumBands();
      boolean grey = cm.getColorSpace().getType() == ColorSpace.TYPE_GRAY;
      int[] shift = new int[bands];
      for (int c = 0; c < bands; c++) {
        shift[c] = Math.max(0, cm.getComponentSize(c) - 8);
      }
      int[] row = new int[w * bands];
      for (int y = 0; y < h; y++) {
        raster.getPixels(0, y, w, 1, row);
        for (int x = 0; x < w; x++) {
          int o = x * bands;
          int r = row[o] >> shift[0];
          int g = grey ? r : row[o + 1] >> shift[1];
          int b = grey ? r : row[o + 2] >> shift[2];
          int a = alpha ? row[o + bands - 1] >> shift[bands - 1] : 255;
          put(out, (y * w + x) * 3, r, g, b, a);
        }
      }
    } else {
      // Palettes and other models: their sRGB values (a palette lookup is exact), a row at a time
      // (a whole-image int[] would be 4 more bytes per pixel: 1-bit PNGs compress very well).
      int[] argb = new int[w];
      boolean hasAlpha = alpha || cm instanceof IndexColorModel icm && icm.hasAlpha();
      for (int y = 0; y < h; y++) {
        img.getRGB(0, y, w, 1, argb, 0, w);
        for (int x = 0; x < w; x++) {
          int p = argb[x];
          int a = hasAlpha ? (p >>> 24) : 255;
          put(out, (y * w + x) * 3, (p >> 16) & 0xff, (p >> 8) & 0xff, p & 0xff, a);
        }
      }
    }
    return new RgbImage(w, h, out);
  }

  private static void put(byte[] out, int o, int r, int g, int b, int a) {
    if (a == 255) {
      out[o] = (byte) r;
      out[o + 1] = (byte) g;
      out[o + 2] = (byte) b;
    } else {
      out[o] = (byte) overWhite(r, a);
      out[o + 1] = (byte) overWhite(g, a);
      out[o + 2] = (byte) overWhite(b, a);
    }
  }

  /**
   * PIL's {@code Image.alpha_composite} of one channel over an opaque white background (its
   * fixed-point path with 7 precision bits), so transparent pixels come out as PIL makes them.
   */
  static int overWhite(int c, int a) {
    int coef1 = a << 7; // src.a · 255 · 255 · 2^7 / (255 · 255)
    int coef2 = (255 << 7) - coef1;
    int tmp = c * coef1 + 255 * coef2 + (0x80 << 7);
    return (((tmp >> 8) + tmp) >> 8) >> 7;
  }
}
