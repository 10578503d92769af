package dev.pdserve.prefill;

import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.vision.PromptImage;
import java.util.List;

/**
 * One prompt to prefill and the decode node's Flight endpoint its KV goes to.
 *
 * @param promptIds the prompt's token ids, each image's placeholders included
 * @param images the prompt's images in prompt order (empty for a text prompt), checked against the
 *     ids by the engine before anything is computed
 */
public record PrefillJob(
    String requestId,
    int[] promptIds,
    SamplingParams params,
    long seed,
    String transferId,
    String flightHost,
    int flightPort,
    List<PromptImage> images) {
  public PrefillJob {
    images = List.copyOf(images);
  }

  /** A text prompt. */
  public PrefillJob(
      String requestId,
      int[] promptIds,
      SamplingParams params,
      long seed,
      String transferId,
      String flightHost,
      int flightPort) {
    this(requestId, promptIds, params, seed, transferId, flightHost, flightPort, List.of());
  }
}
