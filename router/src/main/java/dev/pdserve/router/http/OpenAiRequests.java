package dev.pdserve.router.http;

import com.fasterxml.jackson.databind.JsonNode;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.PromptRenderer;
import dev.pdserve.model.sampling.InvalidRequestException;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.tokenizer.ChatMessage;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.Set;

/**
 * Reads OpenAI chat and completion requests into the router's {@link GenerateRequest}: the prompt,
 * vLLM-named sampling parameters, and what the engine does not do yet refused with a 400 that says
 * so ({@code n must be 1}, images, tools, top log-probabilities). Values are checked here with the
 * engine's own validation, so a 400 names the field; the context length is checked by the router,
 * which knows the prompt's tokens.
 */
final class OpenAiRequests {
  /** OpenAI's completions default; vLLM's too. */
  static final int COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

  private static final Set<String> IMAGE_PARTS = Set.of("image_url", "input_image", "image");

  private final ModelConfig model;
  private final String modelName;
  private final PromptRenderer renderer;
  private final int chatMaxTokensCap;

  /**
   * @param renderer renders a chat prompt to count its tokens when {@code max_tokens} is not given
   * @param chatMaxTokensCap the most a chat request without {@code max_tokens} may generate (else
   *     the rest of the context)
   */
  OpenAiRequests(
      ModelConfig model, String modelName, PromptRenderer renderer, int chatMaxTokensCap) {
    this.model = model;
    this.modelName = modelName;
    this.renderer = renderer;
    this.chatMaxTokensCap = chatMaxTokensCap;
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

  private static List<ChatMessage> messages(JsonFields f) {
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
  }

  /** A string, or a list of text parts joined by newlines (as vLLM joins them). */
  private static String content(JsonNode c, String where) {
    if (c == null) {
      throw ApiError.badRequest(
          "messages", where + ".content is required (a string or a list of text parts)");
    }
    if (c.isTextual()) {
      return c.textValue();
    }
    if (!c.isArray()) {
      throw JsonFields.wrongType(where + ".content", "a string or a list of content parts", c);
    }
    StringBuilder text = new StringBuilder();
    for (int j = 0; j < c.size(); j++) {
      JsonNode part = c.get(j);
      String at = where + ".content[" + j + "]";
      if (!part.isObject()) {
        throw JsonFields.wrongType(
            at, "an object like {\"type\": \"text\", \"text\": \"...\"}", part);
      }
      String type = part.path("type").asText("");
      if (IMAGE_PARTS.contains(type)) {
        throw ApiError.badRequest(
            "messages",
            at + ": images are not supported yet (part type '" + type + "'); send text parts only");
      }
      if (!type.equals("text")) {
        throw ApiError.badRequest(
            "messages",
            at + ": content part type '" + type + "' is not supported; only 'text' parts are");
      }
      JsonNode t = part.get("text");
      if (t == null || !t.isTextual()) {
        throw JsonFields.wrongType(at + ".text", "a string", t);
      }
      if (text.length() > 0) {
        text.append('\n');
      }
      text.append(t.textValue());
    }
    return text.toString();
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
