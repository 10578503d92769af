package dev.pdserve.model.config;

import java.util.OptionalInt;
import java.util.function.Function;

/**
 * The vocabulary ids that frame images (and videos) in a prompt. An image is {@code start}, one
 * {@code placeholder} per merged patch, then {@code end}. Ids come from {@code config.json} ({@code
 * image_start_token_id}, {@code image_end_token_id}, {@code im_patch_id} or {@code image_token_id},
 * {@code video_start_token_id}, {@code video_end_token_id}); an id the config does not give is
 * {@link #UNKNOWN} until {@link #resolve} looks it up among the tokenizer's special tokens.
 */
public record ImageTokenIds(int start, int end, int placeholder, int videoStart, int videoEnd) {
  public static final int UNKNOWN = -1;

  public static final String START_TOKEN = "<|IMAGE_START|>";
  public static final String END_TOKEN = "<|IMAGE_END|>";
  public static final String PLACEHOLDER_TOKEN = "<|IMAGE_PLACEHOLDER|>";
  public static final String VIDEO_START_TOKEN = "<|VIDEO_START|>";
  public static final String VIDEO_END_TOKEN = "<|VIDEO_END|>";

  /** Every id unknown: all of them are to come from the tokenizer. */
  public static ImageTokenIds unknown() {
    return new ImageTokenIds(UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN);
  }

  /** Whether the image ids (start, end, placeholder) are all known. */
  public boolean resolved() {
    return start >= 0 && end >= 0 && placeholder >= 0;
  }

  /**
   * Fills unknown ids from the tokenizer's special tokens ({@code <|IMAGE_START|>}, ...).
   *
   * @param specialTokenId the tokenizer's lookup of a special token's exact string
   * @param source names the model in the error
   * @throws ConfigException naming the config key when an image id is neither in the config nor
   *     among the tokenizer's special tokens (video ids may stay unknown)
   */
  public ImageTokenIds resolve(Function<String, OptionalInt> specialTokenId, String source) {
    ImageTokenIds out =
        new ImageTokenIds(
            pick(start, specialTokenId.apply(START_TOKEN)),
            pick(end, specialTokenId.apply(END_TOKEN)),
            pick(placeholder, specialTokenId.apply(PLACEHOLDER_TOKEN)),
            pick(videoStart, specialTokenId.apply(VIDEO_START_TOKEN)),
            pick(videoEnd, specialTokenId.apply(VIDEO_END_TOKEN)));
    require(out.start, "image_start_token_id", START_TOKEN, source);
    require(out.end, "image_end_token_id", END_TOKEN, source);
    require(out.placeholder, "im_patch_id", PLACEHOLDER_TOKEN, source);
    return out;
  }

  /**
   * Whether a prompt token with this id is a vision token: an image placeholder, or an image or
   * video start or end token. Such prompt tokens use the vision expert group.
   */
  public boolean isVisionToken(int id) {
    return id >= 0
        && (id == placeholder || id == start || id == end || id == videoStart || id == videoEnd);
  }

  /** Checks every known id against the vocabulary. */
  void validate(int vocabSize) {
    check(start, "image_start_token_id", vocabSize);
    check(end, "image_end_token_id", vocabSize);
    check(placeholder, "im_patch_id", vocabSize);
    check(videoStart, "video_start_token_id", vocabSize);
    check(videoEnd, "video_end_token_id", vocabSize);
    if (resolved() && (start == end || start == placeholder || end == placeholder)) {
      throw new ConfigException(
          "image token ids must differ: image_start_token_id "
              + start
              + ", image_end_token_id "
              + end
              + ", im_patch_id "
              + placeholder);
    }
  }

  private static void check(int id, String key, int vocabSize) {
    if (id != UNKNOWN && (id < 0 || id >= vocabSize)) {
      throw new ConfigException(key + ": must be a token id in [0, " + vocabSize + "), got " + id);
    }
  }

  private static int pick(int configured, OptionalInt fromTokenizer) {
    return configured != UNKNOWN ? configured : fromTokenizer.orElse(UNKNOWN);
  }

  private static void require(int id, String key, String token, String source) {
    if (id == UNKNOWN) {
      throw new ConfigException(
          source
              + ": "
              + key
              + " is not in config.json and the tokenizer has no special token "
              + token
              + "; a vision model needs it");
    }
  }
}
