package dev.pdserve.router.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.pdserve.router.EmptyClusterRouter;
import dev.pdserve.router.Router;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Fuzzes the OpenAI-compatible API's request decoding: any body posted to {@code
 * /v1/chat/completions} and {@code /v1/completions} goes through {@link OpenAiApi} (JSON parsing,
 * {@link OpenAiRequests} and {@link JsonFields}, the router's rendering and validation) and ends in
 * one JSON response: a client error (4xx, naming what is wrong), or, once it passed every check,
 * the 503 of a cluster without nodes ({@link EmptyClusterRouter}). Never a 500, never an exception
 * out of the handler. Bodies are bounded as the server bounds them (larger ones get 413 before
 * parsing). See docs/SECURITY.md, "Fuzzing".
 */
class OpenAiRequestFuzzTest {
  private static final String[] PATHS = {"/v1/chat/completions", "/v1/completions"};

  private static Router router; // made on the first run, so that its classes are instrumented
  private static OpenAiApi api;

  @DictionaryEntries({
    "\"model\"",
    "\"messages\"",
    "\"role\"",
    "\"content\"",
    "\"system\"",
    "\"user\"",
    "\"assistant\"",
    "\"developer\"",
    "\"type\"",
    "\"text\"",
    "\"image_url\"",
    "\"prompt\"",
    "\"max_tokens\"",
    "\"max_completion_tokens\"",
    "\"min_tokens\"",
    "\"temperature\"",
    "\"top_p\"",
    "\"top_k\"",
    "\"min_p\"",
    "\"seed\"",
    "\"stop\"",
    "\"stop_token_ids\"",
    "\"stream\"",
    "\"stream_options\"",
    "\"include_usage\"",
    "\"logprobs\"",
    "\"top_logprobs\"",
    "\"n\"",
    "\"best_of\"",
    "\"echo\"",
    "\"presence_penalty\"",
    "\"frequency_penalty\"",
    "\"repetition_penalty\"",
    "\"ignore_eos\"",
    "\"return_token_ids\"",
    "\"chat_template_kwargs\"",
    "\"enable_thinking\"",
    "\"response_format\"",
    "\"logit_bias\"",
    "\"tools\"",
    "\"tool_choice\"",
    "\"tiny\"",
    "<|begin_of_sentence|>",
    "<think>",
    "null",
    "true",
    "1e999",
    "-1",
    "2147483648"
  })
  @FuzzTest(maxDuration = "20s")
  void anyBodyIsDecodedOrRefusedWithAClientError(byte[] body) {
    if (body.length > HttpApiSettings.DEFAULT_MAX_BODY_BYTES) {
      return; // the server answers 413 before the body is read
    }
    for (String path : PATHS) {
      RecordingExchange ex = new RecordingExchange("POST", path, body);
      api().handle(ex);
      checkAnswered(ex, body);
    }
  }

  /** The harness tells a request that passed every check from one that was refused. */
  @Test
  void validRequestPassesEveryCheckAndInvalidOneIsRefused() {
    RecordingExchange ok =
        new RecordingExchange(
            "POST",
            "/v1/chat/completions",
            bytes(
                "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 4}"));
    api().handle(ok);
    checkAnswered(ok, ok.body());
    assertEquals(503, ok.responses.get(0).status(), "a valid request reaches the empty cluster");

    RecordingExchange bad =
        new RecordingExchange("POST", "/v1/completions", bytes("{\"prompt\": \"hi\", \"n\": 2}"));
    api().handle(bad);
    checkAnswered(bad, bad.body());
    assertEquals(400, bad.responses.get(0).status(), "n = 2 is refused");
  }

  @AfterAll
  static void closeRouter() {
    if (router != null) {
      router.close();
    }
  }

  private static OpenAiApi api() {
    if (api == null) {
      router = EmptyClusterRouter.create();
      api = new OpenAiApi(router, EmptyClusterRouter.renderer(), 64, router.model().name());
    }
    return api;
  }

  /** One JSON answer: a 4xx with a message, or the empty cluster's 503 after every check. */
  private static void checkAnswered(RecordingExchange ex, byte[] body) {
    String what = ex.path() + " with body " + printable(body);
    assertEquals(0, ex.eventStreams, "no event stream may start without nodes; " + what);
    assertEquals(1, ex.responses.size(), "exactly one response; " + what);
    RecordingExchange.Response r = ex.responses.get(0);
    String message = r.body().path("error").path("message").asText(null);
    if (r.status() >= 400 && r.status() < 500) {
      assertTrue(message != null && !message.isBlank(), "a 4xx says why; " + what);
    } else if (r.status() != 503 || !EmptyClusterRouter.passedValidation(message)) {
      fail("answered " + r.status() + " " + r.body() + "; " + what);
    }
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  private static String printable(byte[] body) {
    String s = new String(body, StandardCharsets.UTF_8);
    return s.length() > 300 ? s.substring(0, 300) + "..." : s;
  }
}
