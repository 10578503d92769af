package dev.pdserve.router.grpc;

import dev.pdserve.api.v1.GenerateRequestOrBuilder;
import dev.pdserve.api.v1.Image;
import dev.pdserve.core.grpc.ProtoConversions;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.tokenizer.ChatMessage;
import dev.pdserve.model.tokenizer.ChatTemplate;
import dev.pdserve.model.tokenizer.ContentPart;
import dev.pdserve.model.vision.EncodedImage;
import dev.pdserve.router.images.ImageIntake;
import dev.pdserve.router.images.ImageRefusedException;
import java.util.ArrayList;
import java.util.List;

/** The public API's {@code GenerateRequest} to the domain's {@link GenerateRequest}. */
final class GenerateRequests {
  private GenerateRequests() {}

  /** As below, with the default image intake (inline and data: images, nothing fetched). */
  static GenerateRequest toDomain(String id, GenerateRequestOrBuilder req, String modelName) {
    return toDomain(id, req, modelName, ImageIntake.defaults());
  }

  /**
   * The request as the router takes it, with id {@code id}; its images taken in by {@code images}
   * (chat images as {@code messages[i].content[j]}, as the renderer names them, others as {@code
   * images[k]}).
   *
   * @throws ServingException NOT_FOUND for a model other than {@code modelName}, INVALID_ARGUMENT
   *     for a request without input or with an image it cannot take (naming the part)
   * @throws IllegalArgumentException for parameters the domain refuses
   */
  static GenerateRequest toDomain(
      String id, GenerateRequestOrBuilder req, String modelName, ImageIntake images) {
    if (!req.getModel().isEmpty() && !req.getModel().equals(modelName)) {
      throw ServingException.notFound(
          "model '"
              + req.getModel()
              + "' is not served here; this cluster serves '"
              + modelName
              + "' (see ListModels)");
    }
    Prompt prompt;
    try {
      prompt = prompt(req, images);
    } catch (ImageRefusedException e) {
      throw ServingException.invalid(e.getMessage());
    }
    SamplingParams params = ProtoConversions.sampling(req.getParams());
    return new GenerateRequest(
        id, prompt, params, !req.hasEnableThinking() || req.getEnableThinking());
  }

  private static Prompt prompt(GenerateRequestOrBuilder req, ImageIntake intake) {
    if (req.getInputCase() != dev.pdserve.api.v1.GenerateRequest.InputCase.MESSAGES) {
      intake.checkCount(req.getImagesCount(), "images");
    }
    return switch (req.getInputCase()) {
      case MESSAGES -> {
        if (req.getImagesCount() > 0) {
          throw ServingException.invalid(
              "images: a chat (messages) input carries its images as parts of its messages;"
                  + " leave images empty");
        }
        yield new Prompt.Messages(messages(req, intake));
      }
      case PROMPT -> {
        List<EncodedImage> files = load(req.getImagesList(), intake);
        String text = req.getPrompt();
        if (!files.isEmpty() && !text.contains(ChatTemplate.IMAGE_SLOT)) {
          // no slots: the images come first, as the chat template places them
          StringBuilder sb = new StringBuilder();
          for (int k = 1; k <= files.size(); k++) {
            sb.append("Picture ").append(k).append(':').append(ChatTemplate.IMAGE_SLOT);
          }
          text = sb.append(text).toString();
        }
        yield new Prompt.Text(text, files);
      }
      case PROMPT_TOKEN_IDS ->
          new Prompt.Tokens(
              req.getPromptTokenIds().getIdsList().stream().mapToInt(Integer::intValue).toArray(),
              load(req.getImagesList(), intake));
      case INPUT_NOT_SET ->
          throw ServingException.invalid(
              "the request has no input: set one of messages, prompt or prompt_token_ids");
    };
  }

  private static List<ChatMessage> messages(GenerateRequestOrBuilder req, ImageIntake intake) {
    var list = req.getMessages().getMessagesList(); // the API's message type
    int count = 0;
    for (var m : list) {
      for (var p : m.getPartsList()) {
        count += p.hasImage() ? 1 : 0;
      }
    }
    intake.checkCount(count, "messages");
    List<ChatMessage> msgs = new ArrayList<>();
    for (int i = 0; i < list.size(); i++) {
      var m = list.get(i);
      if (m.getPartsCount() == 0) {
        msgs.add(new ChatMessage(m.getRole(), m.getContent()));
        continue;
      }
      String at = "messages[" + i + "]";
      if (!m.getContent().isEmpty()) {
        throw ServingException.invalid(
            at + ": set content or parts, not both (with parts, the parts are the content)");
      }
      List<ContentPart> parts = new ArrayList<>();
      for (int j = 0; j < m.getPartsCount(); j++) {
        var p = m.getParts(j);
        String where = at + ".content[" + j + "]";
        switch (p.getPartCase()) {
          case TEXT -> parts.add(ContentPart.text(p.getText()));
          case IMAGE -> parts.add(ContentPart.image(image(p.getImage(), where, intake)));
          case PART_NOT_SET ->
              throw ServingException.invalid(where + ": set text or image in each content part");
        }
      }
      msgs.add(new ChatMessage(m.getRole(), parts));
    }
    return msgs;
  }

  private static List<EncodedImage> load(List<Image> images, ImageIntake intake) {
    List<EncodedImage> out = new ArrayList<>(images.size());
    for (int k = 0; k < images.size(); k++) {
      out.add(image(images.get(k), "images[" + k + "]", intake));
    }
    return out;
  }

  private static EncodedImage image(Image img, String where, ImageIntake intake) {
    return switch (img.getSourceCase()) {
      case DATA -> intake.inline(img.getData().toByteArray(), img.getMediaType(), where);
      case URL -> intake.url(img.getUrl(), where);
      case SOURCE_NOT_SET ->
          throw new ImageRefusedException(where, "the image has neither data nor url", false);
    };
  }
}
