package dev.pdserve.decode;

import dev.pdserve.core.engine.ImageEncodingStage;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.engine.ImagePromptEncoder;
import dev.pdserve.model.engine.PromptImages;
import java.util.function.BiConsumer;
import java.util.function.Consumer;

/**
 * The images of prompts a decode node prefills itself ({@link JoinRequest#localPrefill()}): checked
 * against the prompt's token ids, then decoded, preprocessed and encoded (or taken from the encoder
 * cache) on the engine's {@code decode-vision} thread, so the running batch never waits for them.
 * The sequence joins the batch with its prefill inputs, or fails with INVALID_ARGUMENT naming the
 * image that cannot be used.
 */
final class LocalPrefillImages implements AutoCloseable {
  private final ImageEncodingStage stage; // null: the model takes no images
  private final String modelName;

  /**
   * @param resources a vision encoder in them makes the stage; without one images are refused
   */
  LocalPrefillImages(DecodeResources resources, DecodeMetrics metrics, String nodeId) {
    this.modelName = resources.runner().config().name();
    this.stage =
        resources.visionEncoder() == null
            ? null
            : new ImageEncodingStage(
                "decode-vision",
                nodeId,
                new ImagePromptEncoder(
                    resources.runner(),
                    resources.visionEncoder(),
                    resources.encoderCache(),
                    metrics));
  }

  /**
   * Encodes the images of {@code s} (a local prefill with images); then {@code ready} gets it with
   * its {@link DecodeSequence#inputs} and {@link DecodeSequence#positionDelta} set, or {@code
   * failed} gets it with the reason. Either is called exactly once, on any thread.
   */
  void encode(
      DecodeSequence s,
      Consumer<DecodeSequence> ready,
      BiConsumer<DecodeSequence, Throwable> failed) {
    JoinRequest j = s.join;
    PromptImages checked;
    try {
      checked = check(j);
    } catch (ServingException e) {
      failed.accept(s, e);
      return;
    }
    stage
        .encode(j.requestId(), checked)
        .whenComplete(
            (inputs, err) -> {
              if (err != null) {
                failed.accept(s, err);
                return;
              }
              int delta = inputs.positions().delta();
              if (j.positionDelta() != 0 && j.positionDelta() != delta) {
                failed.accept(
                    s,
                    ServingException.invalid(
                        "request "
                            + j.requestId()
                            + ": position_delta "
                            + j.positionDelta()
                            + " is not its prompt's ("
                            + delta
                            + ")"));
                return;
              }
              s.inputs = inputs;
              s.positionDelta = delta;
              ready.accept(s);
            });
  }

  private PromptImages check(JoinRequest j) {
    if (stage == null) {
      throw ServingException.invalid(
          "request "
              + j.requestId()
              + " has "
              + j.images().size()
              + " images, but model "
              + modelName
              + " takes none here (this node runs without a vision encoder: the model has none,"
              + " or pdserve.vision.enabled is false); send text only");
    }
    return stage.check(j.requestId(), j.promptIds(), j.images());
  }

  /** Fails the prompts still waiting for their images; waits for the one encoding. */
  @Override
  public void close() {
    if (stage != null) {
      stage.close();
    }
  }
}
