package dev.pdserve.core.config;

import java.time.Duration;
import java.util.List;
import java.util.Locale;

/**
 * What images the router takes with a request ({@code pdserve.router.images.*}).
 *
 * @param maxPerPrompt images one prompt may hold; 0 = none (every image refused)
 * @param maxBytes bytes of one encoded image (a data: URL's decoded bytes, a fetched body, a gRPC
 *     {@code Image.data}); more is refused (HTTP 413) — a fetched body as soon as it passes the
 *     limit, not after
 * @param maxPixels width × height of one image as its file's header declares it; more is refused
 *     before any pixel is decoded
 * @param fetchEnabled whether {@code http(s)://} image URLs are fetched at all (data: URLs always
 *     work)
 * @param allowedHosts hosts image URLs may name: exact names, {@code *.example.com} for its
 *     subdomains, {@code *} for any; empty = none. Whatever the list says, a host that resolves to
 *     a loopback, private, link-local or otherwise non-public address is refused, at every redirect
 * @param fetchTimeout the longest one image's fetch may take, redirects included
 * @param maxRedirects redirects one fetch may follow
 */
public record ImageIntakeSettings(
    int maxPerPrompt,
    long maxBytes,
    long maxPixels,
    boolean fetchEnabled,
    List<String> allowedHosts,
    Duration fetchTimeout,
    int maxRedirects) {
  public static final int DEFAULT_MAX_PER_PROMPT = 8;

  /**
   * 3 MiB a file: eight of them with the prompt's ids fit a 32 MiB gRPC message to the prefill node
   * ({@code pdserve.grpc.max-inbound-bytes}' default).
   */
  public static final long DEFAULT_MAX_BYTES = 3L << 20;

  /** 4096 × 4096: far above what the model sees (28·28·6177 ≈ 4.8 Mpx after resizing). */
  public static final long DEFAULT_MAX_PIXELS = 4096L * 4096;

  public static final Duration DEFAULT_FETCH_TIMEOUT = Duration.ofSeconds(10);
  public static final int DEFAULT_MAX_REDIRECTS = 3;

  public static final ImageIntakeSettings DEFAULTS =
      new ImageIntakeSettings(
          DEFAULT_MAX_PER_PROMPT,
          DEFAULT_MAX_BYTES,
          DEFAULT_MAX_PIXELS,
          false,
          List.of(),
          DEFAULT_FETCH_TIMEOUT,
          DEFAULT_MAX_REDIRECTS);

  public ImageIntakeSettings {
    if (maxPerPrompt < 0 || maxBytes < 1 || maxPixels < 1 || maxRedirects < 0) {
      throw new IllegalArgumentException(
          "image limits must be >= 0 images, >= 1 byte, >= 1 pixel and >= 0 redirects, got "
              + maxPerPrompt
              + ", "
              + maxBytes
              + ", "
              + maxPixels
              + ", "
              + maxRedirects);
    }
    if (fetchTimeout == null || fetchTimeout.isNegative() || fetchTimeout.isZero()) {
      throw new IllegalArgumentException("image fetch timeout must be > 0, got " + fetchTimeout);
    }
    allowedHosts = allowedHosts.stream().map(h -> h.trim().toLowerCase(Locale.ROOT)).toList();
  }

  /** A comma-separated host list ({@code pdserve.router.images.allowed-hosts}). */
  public static List<String> parseHosts(String text) {
    return List.of(text.split(",")).stream()
        .map(String::trim)
        .filter(h -> !h.isEmpty())
        .map(h -> h.toLowerCase(Locale.ROOT))
        .toList();
  }

  /** Whether {@code host} (lower case) is on the allow-list. */
  public boolean hostAllowed(String host) {
    String h = host.toLowerCase(Locale.ROOT);
    for (String a : allowedHosts) {
      if (a.equals("*") || a.equals(h)) {
        return true;
      }
      if (a.startsWith("*.") && h.endsWith(a.substring(1)) && h.length() > a.length() - 1) {
        return true;
      }
    }
    return false;
  }

  public ImageIntakeSettings withFetching(List<String> hosts) {
    return new ImageIntakeSettings(
        maxPerPrompt, maxBytes, maxPixels, true, hosts, fetchTimeout, maxRedirects);
  }
}
