package dev.pdserve.loadgen.dataset;

import java.util.List;

/**
 * One request of a benchmark's stream, as sent.
 *
 * @param index position in the stream (negative for warm-up requests)
 * @param promptIds the prompt as token ids (sent as token ids over gRPC), or {@code null}
 * @param promptText the prompt as text (HTTP endpoints, ShareGPT), or {@code null}
 * @param promptTokens the prompt length in tokens as the dataset intends it (exact for token ids;
 *     for text, the server's count from the response is used when it reports one)
 * @param outputTokens {@code max_tokens} of the request
 * @param images images sent with the prompt (before its text), empty for text-only datasets
 */
public record BenchRequest(
    long index,
    int[] promptIds,
    String promptText,
    int promptTokens,
    int outputTokens,
    List<BenchImage> images) {
  public BenchRequest {
    images = images == null ? List.of() : List.copyOf(images);
    if (!images.isEmpty() && promptText == null) {
      throw new IllegalArgumentException("a request with images has its prompt as text");
    }
    if ((promptIds == null) == (promptText == null)) {
      throw new IllegalArgumentException("a request has either token ids or text");
    }
    if (outputTokens < 1) {
      throw new IllegalArgumentException("output tokens must be >= 1, got " + outputTokens);
    }
  }
}
