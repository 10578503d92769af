package dev.pdserve.router.images;

import dev.pdserve.core.config.ImageIntakeSettings;
import dev.pdserve.model.vision.EncodedImage;
import java.util.Base64;
import java.util.Locale;
import java.util.Set;

/**
 * Takes the images of requests in: an encoded file given inline (gRPC {@code Image.data}), a {@code
 * data:} URL with base64 (OpenAI {@code image_url}), or, where enabled, an {@code http(s)://} URL
 * fetched by {@link ImageFetcher}. Applies the limits of {@link ImageIntakeSettings} (images per
 * prompt, bytes per image) and refuses media types other than PNG and JPEG; decoding, the pixel
 * limit and the geometry are the prompt renderer's. Every refusal is an {@link
 * ImageRefusedException} naming the part. Thread-safe.
 */
public final class ImageIntake {
  static final Set<String> MEDIA_TYPES = Set.of("image/png", "image/jpeg", "image/jpg");

  private final ImageIntakeSettings settings;
  private final ImageFetcher fetcher;

  public ImageIntake(ImageIntakeSettings settings, ImageFetcher fetcher) {
    this.settings = settings;
    this.fetcher = fetcher;
  }

  /** The defaults: data and inline images only, nothing fetched. */
  public static ImageIntake defaults() {
    return of(ImageIntakeSettings.DEFAULTS);
  }

  /** Intake with {@code settings}, fetching from public addresses only. */
  public static ImageIntake of(ImageIntakeSettings settings) {
    return new ImageIntake(settings, ImageFetcher.publicOnly(settings));
  }

  public ImageIntakeSettings settings() {
    return settings;
  }

  /**
   * Refuses a prompt with more images than allowed ({@code count} of them; {@code where} names the
   * prompt's field).
   */
  public void checkCount(int count, String where) {
    if (count > 0 && settings.maxPerPrompt() == 0) {
      throw new ImageRefusedException(
          where,
          "this deployment serves text only and takes no images"
              + " (pdserve.router.images.max-per-prompt is 0, or pdserve.vision.enabled is false);"
              + " send the prompt without images",
          false);
    }
    if (count > settings.maxPerPrompt()) {
      throw new ImageRefusedException(
          where,
          count
              + " images in one prompt, more than the limit of "
              + settings.maxPerPrompt()
              + " (pdserve.router.images.max-per-prompt)",
          false);
    }
  }

  /** An image given as its encoded bytes, declared {@code mediaType} ("" = unknown). */
  public EncodedImage inline(byte[] data, String mediaType, String where) {
    checkMediaType(mediaType, where);
    checkSize(data.length, where);
    if (data.length == 0) {
      throw new ImageRefusedException(where, "image is empty (0 bytes)", false);
    }
    return new EncodedImage(data);
  }

  /** An image given by URL: {@code data:} always; {@code http(s)://} where fetching is enabled. */
  public EncodedImage url(String url, String where) {
    if (url == null || url.isBlank()) {
      throw new ImageRefusedException(where, "the image URL is empty", false);
    }
    String lower = url.substring(0, Math.min(url.length(), 8)).toLowerCase(Locale.ROOT);
    if (lower.startsWith("data:")) {
      return dataUrl(url, where);
    }
    if (lower.startsWith("http://") || lower.startsWith("https://")) {
      if (!settings.fetchEnabled()) {
        throw new ImageRefusedException(
            where,
            "image URLs are not fetched by this server (pdserve.router.images.fetch-enabled is"
                + " false); send the image inline as a data:image/png;base64,... URL",
            false);
      }
      ImageFetcher.Fetched f = fetcher.fetch(url, where);
      if (f.mediaType().toLowerCase(Locale.ROOT).startsWith("image/")) {
        checkMediaType(f.mediaType(), where); // other types (octet-stream): the bytes decide
      }
      return inline(f.body(), "", where);
    }
    throw new ImageRefusedException(
        where,
        "unsupported image URL scheme in '"
            + abbreviate(url)
            + "'; use data:image/png;base64,... (or http(s):// where the server fetches URLs)",
        false);
  }

  /** {@code data:[<media type>][;base64],<data>}; only base64 data is taken. */
  private EncodedImage dataUrl(String url, String where) {
    int comma = url.indexOf(',');
    if (comma < 0) {
      throw new ImageRefusedException(
          where, "malformed data URL (no ','); expected data:image/png;base64,<data>", false);
    }
    String meta = url.substring(5, comma).trim().toLowerCase(Locale.ROOT);
    if (!meta.endsWith(";base64")) {
      throw new ImageRefusedException(
          where,
          "data URL is not base64 ('" + meta + "'); expected data:image/png;base64,<data>",
          false);
    }
    String type = meta.substring(0, meta.length() - ";base64".length());
    int semi = type.indexOf(';'); // parameters such as charset
    if (semi >= 0) {
      type = type.substring(0, semi);
    }
    checkMediaType(type, where);
    int chars = url.length() - comma - 1;
    // refuse before decoding: base64 of n bytes is 4·ceil(n/3) characters
    long atLeast = (long) (chars - 2 - countWhitespace(url, comma + 1)) * 3 / 4;
    if (atLeast > settings.maxBytes()) {
      checkSize(atLeast, where);
    }
    byte[] bytes;
    try {
      bytes = Base64.getMimeDecoder().decode(url.substring(comma + 1));
    } catch (IllegalArgumentException e) {
      throw new ImageRefusedException(
          where, "data URL has invalid base64: " + e.getMessage(), false);
    }
    return inline(bytes, "", where);
  }

  private static int countWhitespace(String s, int from) {
    int n = 0;
    for (int i = from; i < s.length(); i++) {
      if (Character.isWhitespace(s.charAt(i))) {
        n++;
      }
    }
    return n;
  }

  private void checkSize(long bytes, String where) {
    if (bytes > settings.maxBytes()) {
      throw new ImageRefusedException(
          where,
          "image is "
              + (bytes == Long.MAX_VALUE ? "over " + settings.maxBytes() : bytes)
              + " bytes, more than the limit of "
              + settings.maxBytes()
              + " bytes (pdserve.router.images.max-bytes)",
          true);
    }
  }

  private static void checkMediaType(String mediaType, String where) {
    if (mediaType == null || mediaType.isEmpty()) {
      return;
    }
    String t = mediaType.toLowerCase(Locale.ROOT).trim();
    int semi = t.indexOf(';');
    if (semi >= 0) {
      t = t.substring(0, semi).trim();
    }
    if (!MEDIA_TYPES.contains(t)) {
      throw new ImageRefusedException(
          where,
          "unsupported image type '" + t + "'; send PNG (image/png) or JPEG (image/jpeg)",
          false);
    }
  }

  private static String abbreviate(String url) {
    return url.length() <= 64 ? url : url.substring(0, 61) + "...";
  }
}
