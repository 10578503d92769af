package dev.pdserve.router.http;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.model.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * A {@code chat.completion} (or its {@code chat.completion.chunk} stream): the assistant message,
 * with the thought in {@code reasoning_content} when thinking is on.
 */
final class ChatResponse extends OpenAiResponse {
  private final ReasoningSplitter splitter;
  private final StringBuilder reasoning = new StringBuilder();
  private final StringBuilder content = new StringBuilder();
  private final List<Integer> tokenIds = new ArrayList<>();
  private final ArrayNode logprobContent = JSON.createArrayNode();
  private boolean roleSent;

  ChatResponse(ApiExchange exchange, ApiRequest req, Tokenizer tokenizer) {
    super(exchange, req, tokenizer);
    this.splitter =
        req.splitReasoning()
            ? new ReasoningSplitter(
                tokenizer.specialTokenId(ReasoningSplitter.THINK_END).orElse(-1))
            : null;
  }

  @Override
  protected void delta(int[] ids, String text, float[] logprobs) {
    ReasoningSplitter.Split s =
        splitter == null ? new ReasoningSplitter.Split("", text) : splitter.accept(ids, text);
    ArrayNode lps = req.logprobs() ? logprobEntries(ids, logprobs) : null;
    if (!req.stream()) {
      reasoning.append(s.reasoning());
      content.append(s.content());
      for (int id : ids) {
        tokenIds.add(id);
      }
      if (lps != null) {
        logprobContent.addAll(lps);
      }
      return;
    }
    if (s.reasoning().isEmpty() && s.content().isEmpty() && lps == null && !req.returnTokenIds()) {
      return; // nothing to show yet (held-back bytes, a special token)
    }
    ObjectNode chunk = chunk(s, lps, null, null);
    if (req.returnTokenIds()) {
      putTokenIds((ObjectNode) chunk.get("choices").get(0), ids);
    }
    event(chunk);
  }

  @Override
  protected void complete(String finishReason, String stopReason, ObjectNode usage) {
    ReasoningSplitter.Split tail =
        splitter == null ? new ReasoningSplitter.Split("", "") : splitter.finish();
    if (!req.stream()) {
      reasoning.append(tail.reasoning());
      content.append(tail.content());
      sendDocument(document(finishReason, stopReason, usage));
      return;
    }
    if (!tail.reasoning().isEmpty() || !tail.content().isEmpty()) {
      event(chunk(tail, null, null, null));
    }
    event(chunk(new ReasoningSplitter.Split("", ""), null, finishReason, stopReason));
    endStream(usage, "chat.completion.chunk");
  }

  private ObjectNode chunk(
      ReasoningSplitter.Split s, ArrayNode lps, String finishReason, String stopReason) {
    ObjectNode chunk = header("chat.completion.chunk");
    ObjectNode choice = chunk.putArray("choices").addObject();
    choice.put("index", 0);
    ObjectNode delta = choice.putObject("delta");
    if (!roleSent) {
      delta.put("role", "assistant");
      roleSent = true;
    }
    if (!s.reasoning().isEmpty()) {
      delta.put("reasoning_content", s.reasoning());
      if (!s.content().isEmpty()) {
        delta.put("content", s.content());
      }
    } else if (finishReason == null || delta.has("role")) {
      delta.put("content", s.content());
    }
    if (lps == null) {
      choice.putNull("logprobs");
    } else {
      choice.putObject("logprobs").set("content", lps);
    }
    choice.put("finish_reason", finishReason);
    if (finishReason != null) {
      putStopReason(choice, stopReason);
    }
    nullUsage(chunk);
    return chunk;
  }

  private ObjectNode document(String finishReason, String stopReason, ObjectNode usage) {
    ObjectNode doc = header("chat.completion");
    ObjectNode choice = doc.putArray("choices").addObject();
    choice.put("index", 0);
    ObjectNode message = choice.putObject("message");
    message.put("role", "assistant");
    message.put("content", content.toString());
    if (splitter != null) {
      message.put("reasoning_content", reasoning.toString());
    }
    if (req.logprobs()) {
      choice.putObject("logprobs").set("content", logprobContent);
    } else {
      choice.putNull("logprobs");
    }
    choice.put("finish_reason", finishReason);
    putStopReason(choice, stopReason);
    if (req.returnTokenIds()) {
      putTokenIds(choice, tokenIds.stream().mapToInt(Integer::intValue).toArray());
    }
    doc.set("usage", usage);
    return doc;
  }

  /** {@code {token, logprob, bytes, top_logprobs: []}} per token. */
  private ArrayNode logprobEntries(int[] ids, float[] logprobs) {
    ArrayNode out = JSON.createArrayNode();
    for (int i = 0; i < ids.length; i++) {
      String token = tokenText(ids[i]);
      ObjectNode e = out.addObject();
      e.put("token", token);
      e.put("logprob", logprob(logprobs, i));
      ArrayNode bytes = e.putArray("bytes");
      for (byte b : token.getBytes(StandardCharsets.UTF_8)) {
        bytes.add(b & 0xff);
      }
      e.putArray("top_logprobs");
    }
    return out;
  }
}
