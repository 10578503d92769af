package dev.pdserve.router.http;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.tokenizer.Tokenizer;
import dev.pdserve.router.ResponseSink;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * Where the router's output for one OpenAI request goes: accumulated into one JSON document, or
 * streamed as server-sent events ending in {@code data: [DONE]}. The event stream starts with the
 * first chunk, so an error before any output still gets its own HTTP status; an error after it is
 * sent as a {@code data: {"error": ...}} event before {@code [DONE]}. The sink methods are
 * synchronized: the router calls them from its transport threads, one outcome exactly once.
 */
abstract class OpenAiResponse implements ResponseSink {
  static final ObjectMapper JSON = new ObjectMapper();

  /** OpenAI's stand-in for a log-probability that is not finite. */
  private static final double MIN_LOGPROB = -9999.0;

  protected final ApiExchange exchange;
  protected final ApiRequest req;
  private final Tokenizer tokenizer;
  private final Map<String, String> headers;
  private boolean streaming;
  private boolean done;

  OpenAiResponse(ApiExchange exchange, ApiRequest req, Tokenizer tokenizer) {
    this.exchange = exchange;
    this.req = req;
    this.tokenizer = tokenizer;
    this.headers = Map.of("X-Request-Id", req.id());
  }

  @Override
  public final synchronized void onDelta(int[] tokenIds, String text, float[] logprobs) {
    if (!done) {
      delta(tokenIds, text, logprobs);
    }
  }

  @Override
  public final synchronized void onComplete(
      String finishReason,
      String stopReason,
      int promptTokens,
      int completionTokens,
      int cachedTokens) {
    if (done) {
      return;
    }
    done = true;
    ObjectNode usage = JSON.createObjectNode();
    usage.put("prompt_tokens", promptTokens);
    usage.put("completion_tokens", completionTokens);
    usage.put("total_tokens", promptTokens + completionTokens);
    usage.putObject("prompt_tokens_details").put("cached_tokens", cachedTokens);
    complete(finishReason, stopReason, usage);
  }

  @Override
  public final synchronized void onError(ServingException error) {
    if (done) {
      return;
    }
    done = true;
    fail(ApiError.of(error, req.promptParam()));
  }

  /** One token (normally) from the router. */
  protected abstract void delta(int[] tokenIds, String text, float[] logprobs);

  /** The end: the last chunk(s) and [DONE], or the whole document. */
  protected abstract void complete(String finishReason, String stopReason, ObjectNode usage);

  private void fail(ApiError err) {
    if (streaming) {
      exchange.sendEvent(write(err.body()));
      exchange.sendEvent("[DONE]");
      exchange.endEvents();
    } else {
      OpenAiApi.sendError(exchange, err);
    }
  }

  /** Sends one chunk, starting the event stream with the first. */
  protected final void event(ObjectNode chunk) {
    if (!streaming) {
      streaming = true;
      exchange.startEvents(headers);
    }
    exchange.sendEvent(write(chunk));
  }

  /** After the last chunk: the usage chunk when asked for, then [DONE]. */
  protected final void endStream(ObjectNode usage, String object) {
    if (req.includeUsage()) {
      ObjectNode last = header(object);
      last.putArray("choices");
      last.set("usage", usage);
      event(last);
    }
    exchange.sendEvent("[DONE]");
    exchange.endEvents();
  }

  protected final void sendDocument(ObjectNode body) {
    exchange.sendJson(200, headers, body);
  }

  /** {@code id}, {@code object}, {@code created}, {@code model}. */
  protected final ObjectNode header(String object) {
    ObjectNode o = JSON.createObjectNode();
    o.put("id", req.id());
    o.put("object", object);
    o.put("created", req.created());
    o.put("model", req.model());
    return o;
  }

  /** A chunk's {@code usage: null} (OpenAI sends it on every chunk when usage is asked for). */
  protected final void nullUsage(ObjectNode chunk) {
    if (req.includeUsage()) {
      chunk.putNull("usage");
    }
  }

  protected final void putStopReason(ObjectNode choice, String stopReason) {
    SamplingParams p = req.generate().sampling();
    if (stopReason == null) {
      choice.putNull("stop_reason");
    } else if (!p.stop().contains(stopReason) && stopReason.matches("\\d{1,9}")) {
      choice.put(
          "stop_reason", Integer.parseInt(stopReason)); // a stop token id, as vLLM reports it
    } else {
      choice.put("stop_reason", stopReason);
    }
  }

  protected static void putTokenIds(ObjectNode choice, int[] ids) {
    ArrayNode a = choice.putArray("token_ids");
    for (int id : ids) {
      a.add(id);
    }
  }

  /** The token as text (special tokens as their strings); invalid UTF-8 shows as U+FFFD. */
  protected final String tokenText(int id) {
    return tokenizer.decode(new int[] {id}, false);
  }

  protected static double logprob(float[] logprobs, int i) {
    if (i >= logprobs.length || !Float.isFinite(logprobs[i])) {
      return MIN_LOGPROB;
    }
    return logprobs[i];
  }

  static String write(JsonNode node) {
    try {
      return JSON.writeValueAsString(node);
    } catch (JsonProcessingException e) {
      throw new UncheckedIOException(e);
    }
  }

  static byte[] bytes(JsonNode node) {
    return write(node).getBytes(StandardCharsets.UTF_8);
  }
}
