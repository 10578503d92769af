package dev.pdserve.router.http;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.model.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.List;

/** A {@code text_completion} (one document, or one per streamed chunk). */
final class CompletionResponse extends OpenAiResponse {
  private final StringBuilder text = new StringBuilder();
  private final List<Integer> tokenIds = new ArrayList<>();
  private final Logprobs all = new Logprobs();

  /** The legacy logprobs shape: parallel lists. */
  private static final class Logprobs {
    final ArrayNode tokens = JSON.createArrayNode();
    final ArrayNode tokenLogprobs = JSON.createArrayNode();
    final ArrayNode textOffset = JSON.createArrayNode();

    ObjectNode json() {
      ObjectNode o = JSON.createObjectNode();
      o.set("tokens", tokens);
      o.set("token_logprobs", tokenLogprobs);
      o.putNull("top_logprobs");
      o.set("text_offset", textOffset);
      return o;
    }
  }

  CompletionResponse(ApiExchange exchange, ApiRequest req, Tokenizer tokenizer) {
    super(exchange, req, tokenizer);
  }

  @Override
  protected void delta(int[] ids, String delta, float[] logprobs) {
    Logprobs lps = req.stream() ? new Logprobs() : all;
    if (req.logprobs()) {
      for (int i = 0; i < ids.length; i++) {
        lps.tokens.add(tokenText(ids[i]));
        lps.tokenLogprobs.add(logprob(logprobs, i));
        lps.textOffset.add(text.length());
      }
    }
    text.append(delta);
    if (!req.stream()) {
      for (int id : ids) {
        tokenIds.add(id);
      }
      return;
    }
    if (delta.isEmpty() && !req.logprobs() && !req.returnTokenIds()) {
      return;
    }
    ObjectNode chunk = chunk(delta, req.logprobs() ? lps.json() : null, null, null);
    if (req.returnTokenIds()) {
      putTokenIds((ObjectNode) chunk.get("choices").get(0), ids);
    }
    event(chunk);
  }

  @Override
  protected void complete(String finishReason, String stopReason, ObjectNode usage) {
    if (req.stream()) {
      event(chunk("", null, finishReason, stopReason));
      endStream(usage, "text_completion");
      return;
    }
    ObjectNode doc = header("text_completion");
    ObjectNode choice = doc.putArray("choices").addObject();
    choice.put("index", 0);
    choice.put("text", text.toString());
    if (req.logprobs()) {
      choice.set("logprobs", all.json());
    } else {
      choice.putNull("logprobs");
    }
    choice.put("finish_reason", finishReason);
    putStopReason(choice, stopReason);
    if (req.returnTokenIds()) {
      putTokenIds(choice, tokenIds.stream().mapToInt(Integer::intValue).toArray());
    }
    doc.set("usage", usage);
    sendDocument(doc);
  }

  private ObjectNode chunk(
      String delta, ObjectNode logprobs, String finishReason, String stopReason) {
    ObjectNode chunk = header("text_completion");
    ObjectNode choice = chunk.putArray("choices").addObject();
    choice.put("index", 0);
    choice.put("text", delta);
    if (logprobs == null) {
      choice.putNull("logprobs");
    } else {
      choice.set("logprobs", logprobs);
    }
    choice.put("finish_reason", finishReason);
    if (finishReason != null) {
      putStopReason(choice, stopReason);
    }
    nullUsage(chunk);
    return chunk;
  }
}
