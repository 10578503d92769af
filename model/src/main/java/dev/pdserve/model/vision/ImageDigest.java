package dev.pdserve.model.vision;

import dev.pdserve.model.config.VisionConfig;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * What an image becomes for a model, as 32 bytes: SHA-256 over the image file's bytes and every
 * preprocessing setting that shapes its patches (pixel bounds, channel mean and standard deviation,
 * patch size, spatial and temporal merge, channels, and the resampling method and its version). It
 * keys the encoder cache and is an image's part of the prefix cache's block keys, so two nodes, or
 * a router and a node, with the same settings compute the same digest, and a change of settings
 * never reuses an old encoding. Equality is by content.
 */
public record ImageDigest(byte[] bytes) {
  /** Bytes of a SHA-256 digest. */
  public static final int LENGTH = 32;

  /**
   * The resampling and patch-cutting code's identity: bump it when {@link BicubicResampler}, {@link
   * ImagePreprocessor} or {@link ImageDecoder} change what they produce for the same bytes.
   */
  public static final String PREPROCESSING_VERSION = "pillow-bicubic-v1";

  public ImageDigest {
    if (bytes == null || bytes.length != LENGTH) {
      throw new IllegalArgumentException(
          "an image digest is "
              + LENGTH
              + " bytes (SHA-256), got "
              + (bytes == null ? "none" : bytes.length));
    }
    bytes = bytes.clone();
  }

  /** The digest of {@code image} preprocessed with {@code vision}'s settings. */
  public static ImageDigest of(EncodedImage image, VisionConfig vision) {
    MessageDigest d = sha256();
    byte[] settings = settings(vision).getBytes(StandardCharsets.UTF_8);
    d.update(ByteBuffer.allocate(4).putInt(settings.length).array());
    d.update(settings);
    d.update(image.raw());
    return new ImageDigest(d.digest());
  }

  /** The preprocessing settings a digest covers, as one line of text. */
  static String settings(VisionConfig v) {
    return "pdserve-image-digest-v1"
        + "|resample="
        + PREPROCESSING_VERSION
        + "|min_pixels="
        + v.minPixels()
        + "|max_pixels="
        + v.maxPixels()
        + "|mean="
        + v.imageMean()
        + "|std="
        + v.imageStd()
        + "|patch="
        + v.patchSize()
        + "|merge="
        + v.spatialMerge()
        + "|temporal_merge="
        + v.temporalMerge()
        + "|channels="
        + v.inChannels();
  }

  @Override
  public byte[] bytes() {
    return bytes.clone();
  }

  /** Lower-case hex of the 32 bytes. */
  public String hex() {
    return HexFormat.of().formatHex(bytes);
  }

  /** Feeds the digest into {@code d} without copying it. */
  public void updateDigest(MessageDigest d) {
    d.update(bytes);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof ImageDigest other && Arrays.equals(bytes, other.bytes);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(bytes);
  }

  /** The first 12 hex digits, enough to tell images apart in a log line. */
  @Override
  public String toString() {
    return hex().substring(0, 12);
  }

  private static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("this JVM has no SHA-256", e);
    }
  }
}
