package dev.pdserve.decode;

import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.vision.PromptImage;
import java.util.List;

/**
 * A prefilled request joining the decode batch: its prompt (for penalties and stop context), the
 * first token the prefill node sampled, and the sampling state (the seed makes sampling a pure
 * function of the step, so decode continues exactly where prefill left off). With {@code
 * localPrefill} the decode node computes the prompt's KV and first token itself (conditional
 * disaggregation) and {@code firstToken}/{@code firstLogprob} are ignored.
 *
 * @param positionDelta the prompt's 3-D rotary delta ({@code PromptPositions.delta()}): generated
 *     token i sits at {@code i + positionDelta} on every axis; 0 for a text prompt. At most 0 and
 *     more than minus the prompt's length (an image never takes more positions than tokens). A
 *     local prefill with images computes its own (a nonzero one given must equal it)
 * @param images the prompt's images, for a local prefill (the decode node encodes them); empty
 *     otherwise
 */
public record JoinRequest(
    String requestId,
    String transferId,
    int[] promptIds,
    int firstToken,
    double firstLogprob,
    SamplingParams params,
    long seed,
    int cachedTokens,
    boolean localPrefill,
    int positionDelta,
    List<PromptImage> images) {
  public JoinRequest {
    images = List.copyOf(images);
    if (positionDelta > 0 || positionDelta <= -promptIds.length) {
      throw new IllegalArgumentException(
          "position_delta of request "
              + requestId
              + " must be in "
              + (1 - promptIds.length)
              + "..0 for its "
              + promptIds.length
              + " prompt tokens, got "
              + positionDelta);
    }
  }

  /** A request prefilled on a prefill node. */
  public static JoinRequest prefilled(
      String requestId,
      String transferId,
      int[] promptIds,
      int firstToken,
      double firstLogprob,
      SamplingParams params,
      long seed,
      int cachedTokens) {
    return new JoinRequest(
        requestId,
        transferId,
        promptIds,
        firstToken,
        firstLogprob,
        params,
        seed,
        cachedTokens,
        false,
        0,
        List.of());
  }

  /** A request whose prompt the decode node prefills itself. */
  public static JoinRequest localPrefill(
      String requestId, String transferId, int[] promptIds, SamplingParams params, long seed) {
    return new JoinRequest(
        requestId, transferId, promptIds, -1, 0, params, seed, 0, true, 0, List.of());
  }

  /** This request with the 3-D rotary delta of its prompt. */
  public JoinRequest withPositionDelta(int delta) {
    return new JoinRequest(
        requestId,
        transferId,
        promptIds,
        firstToken,
        firstLogprob,
        params,
        seed,
        cachedTokens,
        localPrefill,
        delta,
        images);
  }

  /** This request with its prompt's images (for a local prefill). */
  public JoinRequest withImages(List<PromptImage> prompted) {
    return new JoinRequest(
        requestId,
        transferId,
        promptIds,
        firstToken,
        firstLogprob,
        params,
        seed,
        cachedTokens,
        localPrefill,
        positionDelta,
        prompted);
  }
}
