package dev.pdserve.router.http;

import com.fasterxml.jackson.databind.JsonNode;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.PromptRenderer;
import dev.pdserve.model.sampling.InvalidRequestException;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.tokenizer.ChatMessage;
import dev.pdserve.model.tokenizer.ContentPart;
import dev.pdserve.model.vision.EncodedImage;
import dev.pdserve.router.images.ImageIntake;
import dev.pdserve.router.images.ImageRefusedException;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.Set;

/**
 * Reads OpenAI chat and completion requests into the router's {@link GenerateRequest}: the prompt,
 * vLLM-named sampling parameters, and what the engine does not do yet refused with a 400 that says
 * so ({@code n must be 1}, tools, top log-probabilities). Chat messages may hold {@code image_url}
 * parts (data: URLs, or http(s) URLs where the router fetches them), taken in by {@link
 * ImageIntake}: a refused image is a 400 naming the part ({@code messages[0].content[1]: ...}), one
 * over the byte limit a 413. Values are checked here with the engine's own validation, so a 400
 * names the field; the context length is checked by the router, which knows the prompt's tokens.
 */
final class OpenAiRequests {
  /** OpenAI's completions default; vLLM's too. */
  static final int COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

  private static final Set<String> IMAGE_PARTS = Set.of("image_url", "input_image");
  private static final Set<String> DETAILS = Set.of("auto", "low", "high");

  private final ModelConfig model;
  private final String modelName;
  private final PromptRenderer renderer;
  private final int chatMaxTokensCap;
  private final ImageIntake images;

  /**
   * @param renderer renders a chat prompt to count its tokens when {@code max_tokens} is not given
   * @param chatMaxTokensCap the most a chat request without {@code max_tokens} may generate (else
   *     the rest of the context)
   * @param images takes in the {@code image_url} parts of chat messages
   */
  OpenAiRequests(
      ModelConfig model,
      String modelName,
      PromptRenderer renderer,
      int chatMaxTokensCap,
      ImageIntake images) {
    this.model = model;
    this.modelName = modelName;
    this.renderer = renderer;
    this.chatMaxTokensCap = chatMaxTokensCap;
    this.images = images;
  }

  /** {@code POST /v1/chat/completions}. */
  ApiRequest chat(JsonNode body, String id, long deadlineNanos) {
    JsonFields f = new JsonFields(body);
    String name = model(f);
    Prompt prompt = new Prompt.Messages(messages(f));
    refuseUnsupportedChatFeatures(f);
    boolean thinking = f.object("chat_template_kwargs").bool("enable_thinking").orElse(true);
    boolean logprobs = f.bool("logprobs").orElse(false);
    OptionalInt top = f.integer("top_logprobs");
    if (top.isPresent() && top.getAsInt() != 0) {
      if (!logprobs) {
        throw ApiError.badRequest("top_logprobs", "top_logprobs needs logprobs: true");
      }
      throw ApiError.badRequest(
          "top_logprobs",
          "top_logprobs > 0 is not supported yet: pdserve returns the sampled token's log-probability only; send top_logprobs: 0 or leave it out");
    }
    SamplingParams.Builder b = sampling(f, logprobs);
    String maxField = f.has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    OptionalInt max =
        f.has("max_completion_tokens")
            ? f.integer("max_completion_tokens")
            : f.integer("max_tokens");
    b.maxTokens(max.isPresent() ? max.getAsInt() : defaultChatMaxTokens(prompt, thinking));
    SamplingParams params = validated(b.build(), maxField);
    boolean stream = stream(f);
    return new ApiRequest(
        id,
        name,
        nowSeconds(),
        new GenerateRequest(id, prompt, params, thinking),
        stream,
        includeUsage(f, stream),
        logprobs,
        f.bool("return_token_ids").orElse(false),
        thinking,
        deadlineNanos,
        "messages");
  }

  /** {@code POST /v1/completions}. */
  ApiRequest completion(JsonNode body, String id, long deadlineNanos) {
    JsonFields f = new JsonFields(body);
    String name = model(f);
    Prompt prompt = completionPrompt(f);
    if (f.bool("echo").orElse(false)) {
      throw ApiError.badRequest(
          "echo", "echo is not supported yet; send echo: false or leave it out");
    }
    if (f.has("suffix")) {
      throw ApiError.badRequest(
          "suffix", "suffix is not supported (no fill-in-the-middle); leave it out");
    }
    OptionalInt bestOf = f.integer("best_of");
    if (bestOf.isPresent() && bestOf.getAsInt() != 1) {
      throw ApiError.badRequest("best_of", "best_of must be 1, got " + bestOf.getAsInt());
    }
    OptionalInt lp = f.integer("logprobs");
    if (lp.isPresent() && lp.getAsInt() != 0) {
      throw ApiError.badRequest(
          "logprobs",
          "logprobs > 0 (top alternatives) is not supported yet; logprobs: 0 returns each sampled token's log-probability, got "
              + lp.getAsInt());
    }
    rejectLogitBias(f);
    SamplingParams.Builder b = sampling(f, lp.isPresent());
    b.maxTokens(f.integer("max_tokens").orElse(COMPLETIONS_DEFAULT_MAX_TOKENS));
    SamplingParams params = validated(b.build(), "max_tokens");
    boolean stream = stream(f);
    return new ApiRequest(
        id,
        name,
        nowSeconds(),
        new GenerateRequest(id, prompt, params, true),
        stream,
        includeUsage(f, stream),
        lp.isPresent(),
        f.bool("return_token_ids").orElse(false),
        false,
        deadlineNanos,
        "prompt");
  }

  private String model(JsonFields f) {
    String name = f.string("model").orElse(modelName);
    if (!name.equals(modelName)) {
      throw ApiError.notFound(
          "The model `"
              + name
              + "` does not exist. This server serves `"
              + modelName
              + "` (see GET /v1/models).",
          "model_not_found");
    }
    return name;
  }

  private List<ChatMessage> messages(JsonFields f) {
    JsonNode list = f.node("messages");
    if (list == null) {
      throw ApiError.badRequest(
          "messages", "messages is required: a list of {role, content} objects");
    }
    if (!list.isArray()) {
      throw JsonFields.wrongType("messages", "a list of {role, content} objects", list);
    }
    if (list.isEmpty()) {
      throw ApiError.badRequest("messages", "messages is empty; give at least one message");
    }
    int imageParts = 0;
    for (JsonNode m : list) {
      JsonNode c = m.path("content");
      for (int j = 0; c.isArray() && j < c.size(); j++) {
        imageParts += IMAGE_PARTS.contains(c.get(j).path("type").asText("")) ? 1 : 0;
      }
    }
    try {
      images.checkCount(imageParts, "messages");
      List<ChatMessage> out = new ArrayList<>();
      for (int i = 0; i < list.size(); i++) {
        JsonNode m = list.get(i);
        String where = "messages[" + i + "]";
        if (!m.isObject()) {
          throw JsonFields.wrongType(where, "an object with role and content", m);
        }
        JsonFields mf = new JsonFields(m);
        String role =
            mf.string("role")
                .orElseThrow(() -> ApiError.badRequest("messages", where + ".role is required"));
        if (role.equals("developer")) {
          role = ChatMessage.SYSTEM; // OpenAI's newer name for the system message
        } else if (role.equals("tool") || role.equals("function")) {
          throw ApiError.badRequest(
              "messages",
              where + ".role '" + role + "' is not supported: pdserve has no tool calling yet");
        }
        out.add(new ChatMessage(role, content(mf.node("content"), where)));
      }
      return out;
    } catch (ImageRefusedException e) {
      throw imageError(e);
    }
  }

  /** An image the intake refused: 413 for its size, else 400; the request fails alone. */
  static ApiError imageError(ImageRefusedException e) {
    if (e.tooLarge()) {
      return new ApiError(
          413, ApiError.INVALID_REQUEST, e.getMessage(), "messages", "image_too_large", 0);
    }
    return ApiError.badRequest("messages", e.getMessage());
  }

  /**
   * A string, or a list of text and image parts in order; adjacent text parts are joined by
   * newlines (as vLLM joins them).
   */
  private List<ContentPart> content(JsonNode c, String where) {
    if (c == null) {
      throw ApiError.badRequest(
          "messages", where + ".content is required (a string or a list of content parts)");
    }
    if (c.isTextual()) {
      return List.of(ContentPart.text(c.textValue()));
    }
    if (!c.isArray()) {
      throw JsonFields.wrongType(where + ".content", "a string or a list of content parts", c);
    }
    List<ContentPart> parts = new ArrayList<>();
    StringBuilder text = null;
    for (int j = 0; j < c.size(); j++) {
      JsonNode part = c.get(j);
      String at = where + ".content[" + j + "]";
      if (!part.isObject()) {
        throw JsonFields.wrongType(
            at, "an object like {\"type\": \"text\", \"text\": \"...\"}", part);
      }
      String type = part.path("type").asText("");
      if (IMAGE_PARTS.contains(type)) {
        if (text != null) {
          parts.add(ContentPart.text(text.toString()));
          text = null;
        }
        parts.add(ContentPart.image(imagePart(part, type, at)));
        continue;
      }
      if (!type.equals("text")) {
        throw ApiError.badRequest(
            "messages",
            at
                + ": content part type '"
                + type
                + "' is not supported; only 'text' and 'image_url' parts are");
      }
      JsonNode t = part.get("text");
      if (t == null || !t.isTextual()) {
        throw JsonFields.wrongType(at + ".text", "a string", t);
      }
      if (text == null) {
        text = new StringBuilder();
      } else {
        text.append('\n');
      }
      text.append(t.textValue());
    }
    if (text != null) {
      parts.add(ContentPart.text(text.toString()));
    }
    if (parts.isEmpty()) {
      parts.add(ContentPart.text(""));
    }
    return parts;
  }

  /**
   * {@code {"type": "image_url", "image_url": {"url": ..., "detail": ...}}} (Chat Completions; the
   * url may also be given directly as a string) or {@code {"type": "input_image", "image_url":
   * "..."}} (Responses). {@code detail} is accepted and ignored: the image is always seen at the
   * resolution the model's processor gives it.
   */
  private EncodedImage imagePart(JsonNode part, String type, String at) {
    JsonNode u = part.get("image_url");
    String url;
    if (u != null && u.isTextual()) {
      url = u.textValue();
    } else if (u != null && u.isObject()) {
      JsonNode v = u.get("url");
      if (v == null || !v.isTextual()) {
        throw JsonFields.wrongType(at + ".image_url.url", "a string (data: or http(s) URL)", v);
      }
      url = v.textValue();
      checkDetail(u.get("detail"), at + ".image_url.detail");
    } else {
      throw JsonFields.wrongType(
          at + ".image_url", "an object like {\"url\": \"data:image/png;base64,...\"}", u);
    }
    checkDetail(part.get("detail"), at + ".detail");
    return images.url(url, at);
  }

  private static void checkDetail(JsonNode d, String at) {
    if (d == null || d.isNull()) {
      return;
    }
    if (!d.isTextual() || !DETAILS.contains(d.textValue())) {
      throw ApiError.badRequest("messages", at + " must be 'auto', 'low' or 'high', got " + d);
    }
  }

  private static void refuseUnsupportedChatFeatures(JsonFields f) {
    JsonNode tools = f.node("tools");
    if (tools != null && !(tools.isArray() && tools.isEmpty())) {
      throw ApiError.badRequest(
          "tools", "tools are not supported yet: pdserve has no tool calling");
    }
    if (f.has("functions")) {
      throw ApiError.badRequest(
          "functions", "functions are not supported: pdserve has no tool calling");
    }
    JsonNode choice = f.node("tool_choice");
    if (choice != null && !(choice.isTextual() && choice.textValue().equals("none"))) {
      throw ApiError.badRequest(
          "tool_choice", "tool_choice must be 'none' or left out: pdserve has no tool calling");
    }
    String format = f.object("response_format").string("type").orElse("text");
    if (!format.equals("text")) {
      throw ApiError.badRequest(
          "response_format",
          "response_format type '" + format + "' is not supported yet; only 'text' is");
    }
    rejectLogitBias(f);
  }

  private static void rejectLogitBias(JsonFields f) {
    JsonNode bias = f.node("logit_bias");
    if (bias != null && !(bias.isObject() && bias.isEmpty())) {
      throw ApiError.badRequest("logit_bias", "logit_bias is not supported yet; leave it out");
    }
  }

  private static Prompt completionPrompt(JsonFields f) {
    JsonNode p = f.node("prompt");
    if (p == null) {
      throw ApiError.badRequest("prompt", "prompt is required: a string or a list of token ids");
    }
    if (p.isTextual()) {
      return new Prompt.Text(p.textValue());
    }
    if (!p.isArray()) {
      throw JsonFields.wrongType("prompt", "a string or a list of token ids", p);
    }
    if (p.isEmpty()) {
      throw ApiError.badRequest(
          "prompt", "prompt is empty; give a string or at least one token id");
    }
    if (p.get(0).isTextual() || p.get(0).isArray()) {
      if (p.size() != 1) {
        throw ApiError.badRequest(
            "prompt", "one prompt per request, got " + p.size() + "; send a request per prompt");
      }
      JsonNode only = p.get(0);
      if (only.isTextual()) {
        return new Prompt.Text(only.textValue());
      }
      return new Prompt.Tokens(tokenIds(only, "prompt[0]"));
    }
    return new Prompt.Tokens(tokenIds(p, "prompt"));
  }

  private static int[] tokenIds(JsonNode list, String name) {
    int[] ids = new int[list.size()];
    for (int i = 0; i < ids.length; i++) {
      ids[i] = JsonFields.toInt(name + "[" + i + "]", list.get(i));
    }
    return ids;
  }

  /** The sampling fields both endpoints share; {@code max_tokens} is set by the caller. */
  private static SamplingParams.Builder sampling(JsonFields f, boolean logprobs) {
    OptionalInt n = f.integer("n");
    if (n.isPresent() && n.getAsInt() != 1) {
      throw ApiError.badRequest(
          "n", "n must be 1, got " + n.getAsInt() + "; send n requests instead");
    }
    SamplingParams.Builder b = SamplingParams.builder();
    f.number("temperature").ifPresent(b::temperature);
    f.number("top_p").ifPresent(b::topP);
    f.integer("top_k").ifPresent(b::topK);
    f.number("min_p").ifPresent(b::minP);
    f.number("presence_penalty").ifPresent(b::presencePenalty);
    f.number("frequency_penalty").ifPresent(b::frequencyPenalty);
    f.number("repetition_penalty").ifPresent(b::repetitionPenalty);
    f.longInteger("seed").ifPresent(b::seed);
    f.integer("min_tokens").ifPresent(b::minTokens);
    f.bool("ignore_eos").ifPresent(b::ignoreEos);
    b.stop(f.strings("stop"));
    b.stopTokenIds(f.integers("stop_token_ids"));
    b.logprobs(logprobs ? 1 : 0);
    return b;
  }

  /**
   * The engine's checks with the field named as the client sent it; the context is the router's.
   */
  private SamplingParams validated(SamplingParams p, String maxField) {
    try {
      p.validate(1, Integer.MAX_VALUE, model.vocabSize());
    } catch (InvalidRequestException e) {
      if (e.field().equals("max_tokens") && !maxField.equals("max_tokens")) {
        throw ApiError.badRequest(maxField, e.getMessage().replace("max_tokens", maxField));
      }
      throw ApiError.badRequest(e.field(), e.getMessage());
    }
    return p;
  }

  /**
   * The rest of the context (vLLM's default), at most the cap; 1 when the prompt fills it (the
   * router then says why).
   */
  private int defaultChatMaxTokens(Prompt prompt, boolean thinking) {
    int promptTokens;
    try {
      promptTokens = renderer.render(prompt, thinking).length;
    } catch (InvalidRequestException e) {
      throw ApiError.badRequest(e.field(), e.getMessage());
    }
    return Math.max(1, Math.min(chatMaxTokensCap, model.maxPositions() - promptTokens));
  }

  private static boolean stream(JsonFields f) {
    return f.bool("stream").orElse(false);
  }

  private static boolean includeUsage(JsonFields f, boolean stream) {
    if (!f.has("stream_options")) {
      return false;
    }
    if (!stream) {
      throw ApiError.badRequest(
          "stream_options", "stream_options is only allowed with stream: true");
    }
    return f.object("stream_options").bool("include_usage").orElse(false);
  }

  private static long nowSeconds() {
    return System.currentTimeMillis() / 1000;
  }
}
