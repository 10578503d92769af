package dev.pdserve.router;

import dev.pdserve.core.serving.ServingException;

/** Where a request's output goes: deltas, then exactly one of completion or error. */
public interface ResponseSink {
  void onDelta(int[] tokenIds, String text, float[] logprobs);

  void onComplete(
      String finishReason,
      String stopReason,
      int promptTokens,
      int completionTokens,
      int cachedTokens);

  void onError(ServingException error);
}
