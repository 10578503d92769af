package dev.pdserve.router.grpc;

import dev.pdserve.api.v1.GenerateRequestOrBuilder;
import dev.pdserve.core.grpc.ProtoConversions;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.tokenizer.ChatMessage;
import java.util.ArrayList;
import java.util.List;

/** The public API's {@code GenerateRequest} to the domain's {@link GenerateRequest}. */
final class GenerateRequests {
  private GenerateRequests() {}

  /**
   * The request as the router takes it, with id {@code id}.
   *
   * @throws ServingException NOT_FOUND for a model other than {@code modelName}, INVALID_ARGUMENT
   *     for a request without input
   * @throws IllegalArgumentException for parameters the domain refuses
   */
  static GenerateRequest toDomain(String id, GenerateRequestOrBuilder req, String modelName) {
    if (!req.getModel().isEmpty() && !req.getModel().equals(modelName)) {
      throw ServingException.notFound(
          "model '"
              + req.getModel()
              + "' is not served here; this cluster serves '"
              + modelName
              + "' (see ListModels)");
    }
    Prompt prompt =
        switch (req.getInputCase()) {
          case MESSAGES -> {
            List<ChatMessage> msgs = new ArrayList<>();
            for (var m : req.getMessages().getMessagesList()) { // the API's message type
              msgs.add(new ChatMessage(m.getRole(), m.getContent()));
            }
            yield new Prompt.Messages(msgs);
          }
          case PROMPT -> new Prompt.Text(req.getPrompt());
          case PROMPT_TOKEN_IDS ->
              new Prompt.Tokens(
                  req.getPromptTokenIds().getIdsList().stream()
                      .mapToInt(Integer::intValue)
                      .toArray());
          case INPUT_NOT_SET ->
              throw ServingException.invalid(
                  "the request has no input: set one of messages, prompt or prompt_token_ids");
        };
    SamplingParams params = ProtoConversions.sampling(req.getParams());
    return new GenerateRequest(
        id, prompt, params, !req.hasEnableThinking() || req.getEnableThinking());
  }
}
