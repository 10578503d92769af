package dev.pdserve.model.vision;

import java.util.Arrays;

/**
 * An image file's bytes as a client sent them (PNG or JPEG). Nothing is decoded until the image is
 * preprocessed; equality is by content.
 */
public record EncodedImage(byte[] bytes) {
  public EncodedImage {
    if (bytes == null) {
      throw new IllegalArgumentException("an image needs its bytes");
    }
    bytes = bytes.clone();
  }

  @Override
  public byte[] bytes() {
    return bytes.clone();
  }

  /** The bytes' length without copying them. */
  public int size() {
    return bytes.length;
  }

  /** The bytes themselves, for readers in this package that do not keep or change them. */
  byte[] raw() {
    return bytes;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof EncodedImage other && Arrays.equals(bytes, other.bytes);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(bytes);
  }

  @Override
  public String toString() {
    return "EncodedImage[" + bytes.length + " bytes]";
  }
}
