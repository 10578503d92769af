package dev.pdserve.core.grpc;

import com.google.protobuf.ByteString;
import dev.pdserve.api.v1.Completion;
import dev.pdserve.api.v1.TokenDelta;
import dev.pdserve.api.v1.Usage;
import dev.pdserve.model.engine.Emission;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.vision.EncodedImage;
import dev.pdserve.model.vision.ImageDigest;
import dev.pdserve.model.vision.InvalidImageException;
import dev.pdserve.model.vision.PromptImage;
import java.util.ArrayList;
import java.util.List;

/** Converts between the wire messages and the engine's types, in one place for every node. */
public final class ProtoConversions {
  private ProtoConversions() {}

  /** Wire sampling parameters to the engine's, with vLLM's defaults for unset fields. */
  public static SamplingParams sampling(dev.pdserve.api.v1.SamplingParams p) {
    SamplingParams d = SamplingParams.defaults();
    SamplingParams.Builder b = d.toBuilder();
    if (p.hasTemperature()) {
      b.temperature(p.getTemperature());
    }
    if (p.hasTopP()) {
      b.topP(p.getTopP());
    }
    if (p.hasTopK()) {
      b.topK(p.getTopK());
    }
    if (p.hasMinP()) {
      b.minP(p.getMinP());
    }
    if (p.hasMaxTokens()) {
      b.maxTokens(p.getMaxTokens());
    }
    if (p.hasMinTokens()) {
      b.minTokens(p.getMinTokens());
    }
    b.stop(p.getStopList());
    b.stopTokenIds(p.getStopTokenIdsList());
    if (p.hasSeed()) {
      b.seed(p.getSeed());
    }
    if (p.hasIgnoreEos()) {
      b.ignoreEos(p.getIgnoreEos());
    }
    if (p.hasPresencePenalty()) {
      b.presencePenalty(p.getPresencePenalty());
    }
    if (p.hasFrequencyPenalty()) {
      b.frequencyPenalty(p.getFrequencyPenalty());
    }
    if (p.hasRepetitionPenalty()) {
      b.repetitionPenalty(p.getRepetitionPenalty());
    }
    if (p.hasLogprobs()) {
      b.logprobs(p.getLogprobs());
    }
    return b.build();
  }

  /** The engine's sampling parameters on the wire (every field set explicitly). */
  public static dev.pdserve.api.v1.SamplingParams sampling(SamplingParams s) {
    dev.pdserve.api.v1.SamplingParams.Builder b =
        dev.pdserve.api.v1.SamplingParams.newBuilder()
            .setTemperature((float) s.temperature())
            .setTopP((float) s.topP())
            .setTopK(s.topK())
            .setMinP((float) s.minP())
            .setMaxTokens(s.maxTokens())
            .setMinTokens(s.minTokens())
            .addAllStop(s.stop())
            .addAllStopTokenIds(s.stopTokenIds())
            .setIgnoreEos(s.ignoreEos())
            .setPresencePenalty((float) s.presencePenalty())
            .setFrequencyPenalty((float) s.frequencyPenalty())
            .setRepetitionPenalty((float) s.repetitionPenalty())
            .setLogprobs(s.logprobs());
    s.seed().ifPresent(b::setSeed);
    return b.build();
  }

  public static TokenDelta delta(Emission e, boolean withLogprobs) {
    TokenDelta.Builder d = TokenDelta.newBuilder().setText(e.text());
    if (e.tokenId() >= 0) {
      d.addTokenIds(e.tokenId());
      if (withLogprobs) {
        d.addLogprobs((float) e.logprob());
      }
    }
    return d.build();
  }

  public static Completion completion(
      String finishReason,
      String stopReason,
      int promptTokens,
      int completionTokens,
      int cachedTokens) {
    Completion.Builder c =
        Completion.newBuilder()
            .setFinishReason(finishReason)
            .setUsage(
                Usage.newBuilder()
                    .setPromptTokens(promptTokens)
                    .setCompletionTokens(completionTokens)
                    .setCachedTokens(cachedTokens));
    if (stopReason != null) {
      c.setStopReason(stopReason);
    }
    return c.build();
  }

  /**
   * A prompt's images off the wire ({@code PrefillRequest.images}, {@code DecodeRequest.images}),
   * in prompt order. Only their form is checked here (size, digest length); where their
   * placeholders are and what they decode to is checked by the node that prefills the prompt.
   *
   * @param maxImageBytes the largest image file taken ({@code pdserve.grpc.max-inbound-bytes}: a
   *     request larger than that never reaches the node)
   * @throws InvalidImageException naming the image ({@code images[k]: ...})
   */
  public static List<PromptImage> promptImages(
      List<dev.pdserve.internal.v1.PromptImage> wire, long maxImageBytes) {
    List<PromptImage> out = new ArrayList<>(wire.size());
    for (int k = 0; k < wire.size(); k++) {
      dev.pdserve.internal.v1.PromptImage w = wire.get(k);
      String name = "images[" + k + "]";
      if (w.getData().isEmpty()) {
        throw new InvalidImageException(name + ": image is empty (0 bytes)");
      }
      if (w.getData().size() > maxImageBytes) {
        throw new InvalidImageException(
            name
                + ": image is "
                + w.getData().size()
                + " bytes; this node takes images of at most "
                + maxImageBytes
                + " bytes (pdserve.grpc.max-inbound-bytes)");
      }
      ImageDigest digest = null;
      if (!w.getDigest().isEmpty()) {
        if (w.getDigest().size() != ImageDigest.LENGTH) {
          throw new InvalidImageException(
              name
                  + ": digest must be "
                  + ImageDigest.LENGTH
                  + " bytes (SHA-256), got "
                  + w.getDigest().size());
        }
        digest = new ImageDigest(w.getDigest().toByteArray());
      }
      out.add(
          new PromptImage(
              new EncodedImage(w.getData().toByteArray()),
              w.getMediaType(),
              digest,
              w.getPlaceholderStart(),
              w.getGridH(),
              w.getGridW()));
    }
    return out;
  }

  /** A prompt image on the wire (what a router sends). */
  public static dev.pdserve.internal.v1.PromptImage promptImage(PromptImage image) {
    dev.pdserve.internal.v1.PromptImage.Builder b =
        dev.pdserve.internal.v1.PromptImage.newBuilder()
            .setData(ByteString.copyFrom(image.image().bytes()))
            .setMediaType(image.mediaType())
            .setPlaceholderStart(image.placeholderStart())
            .setGridH(image.gridH())
            .setGridW(image.gridW());
    if (image.digest() != null) {
      b.setDigest(ByteString.copyFrom(image.digest().bytes()));
    }
    return b.build();
  }
}
