package dev.pdserve.model.vision;

/**
 * One image of a prompt whose token ids already hold its placeholders, as the router sends it to
 * the node that prefills the prompt: the file, where its placeholders are, and the merged patch
 * grid the router computed. A node checks every part of it against the ids and the decoded image
 * before it uses it ({@code dev.pdserve.model.engine.PromptImages}).
 *
 * @param image the encoded file, as the client sent it
 * @param mediaType {@code image/png} or {@code image/jpeg} as the client declared it ("" when not
 *     known); the decoder goes by the file's own signature
 * @param digest {@link ImageDigest#of} the image under the sender's preprocessing settings; null
 *     when the sender did not compute one (the node computes it)
 * @param placeholderStart index in the prompt's token ids of the image's first placeholder
 * @param gridH merged patch grid rows
 * @param gridW merged patch grid columns; the image has {@code gridH × gridW} placeholders
 */
public record PromptImage(
    EncodedImage image,
    String mediaType,
    ImageDigest digest,
    int placeholderStart,
    int gridH,
    int gridW) {
  public PromptImage {
    if (image == null) {
      throw new IllegalArgumentException("a prompt image needs its bytes");
    }
    mediaType = mediaType == null ? "" : mediaType;
  }

  /** Placeholder tokens of the image: {@code gridH × gridW}. */
  public long tokens() {
    return (long) gridH * gridW;
  }

  /** Index just past its last placeholder (where its end token is). */
  public long end() {
    return placeholderStart + tokens();
  }

  /** This image with another digest. */
  public PromptImage withDigest(ImageDigest d) {
    return new PromptImage(image, mediaType, d, placeholderStart, gridH, gridW);
  }
}
