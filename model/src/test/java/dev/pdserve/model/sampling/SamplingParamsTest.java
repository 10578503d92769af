package dev.pdserve.model.sampling;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.OptionalLong;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;

class SamplingParamsTest {
  private static final int VOCAB = 288;
  private static final int CONTEXT = 1024;

  @Test
  void defaultsAreVllms() {
    SamplingParams p = SamplingParams.defaults();
    assertAll(
        () -> assertEquals(1.0, p.temperature()),
        () -> assertEquals(1.0, p.topP()),
        () -> assertEquals(0, p.topK()),
        () -> assertEquals(0.0, p.minP()),
        () -> assertEquals(1.0, p.repetitionPenalty()),
        () -> assertEquals(0.0, p.presencePenalty()),
        () -> assertEquals(0.0, p.frequencyPenalty()),
        () -> assertEquals(OptionalLong.empty(), p.seed()),
        () -> assertEquals(16, p.maxTokens()),
        () -> assertEquals(0, p.minTokens()),
        () -> assertEquals(List.of(), p.stop()),
        () -> assertEquals(List.of(), p.stopTokenIds()),
        () -> assertFalse(p.ignoreEos()),
        () -> assertEquals(0, p.logprobs()),
        () -> assertFalse(p.isGreedy()),
        () -> assertFalse(p.hasPenalties()));
  }

  @Test
  void builderAndGreedySetTheirFields() {
    SamplingParams p =
        SamplingParams.builder()
            .temperature(0.7)
            .topP(0.9)
            .topK(40)
            .minP(0.05)
            .repetitionPenalty(1.1)
            .seed(7)
            .maxTokens(64)
            .minTokens(2)
            .stop("\n\n", "END")
            .stopTokenIds(4, 2)
            .ignoreEos(true)
            .logprobs(5)
            .build();
    assertEquals(0.7, p.temperature());
    assertEquals(40, p.topK());
    assertEquals(OptionalLong.of(7), p.seed());
    assertEquals(List.of("\n\n", "END"), p.stop());
    assertEquals(List.of(4, 2), p.stopTokenIds());
    assertTrue(p.hasPenalties());
    assertEquals(p, p.toBuilder().build());
    SamplingParams g = SamplingParams.greedy(8);
    assertTrue(g.isGreedy());
    assertEquals(8, g.maxTokens());
    assertDoesNotThrow(() -> p.validate(10, CONTEXT, VOCAB));
  }

  @Test
  void rejectsEachInvalidFieldWithAnActionableMessage() {
    assertAll(
        () -> assertInvalid("max_tokens", "max_tokens must be >= 1, got 0", b -> b.maxTokens(0)),
        () ->
            assertInvalid(
                "temperature", "temperature must be >= 0, got -1.0", b -> b.temperature(-1)),
        () ->
            assertInvalid(
                "temperature", "temperature must be >= 0, got NaN", b -> b.temperature(Double.NaN)),
        () -> assertInvalid("top_p", "top_p must be in (0, 1], got 1.5", b -> b.topP(1.5)),
        () -> assertInvalid("top_p", "top_p must be in (0, 1], got 0.0", b -> b.topP(0)),
        () -> assertInvalid("top_k", "top_k must be -1, 0 or >= 1, got -2", b -> b.topK(-2)),
        () -> assertInvalid("min_p", "min_p must be in [0, 1], got 1.1", b -> b.minP(1.1)),
        () ->
            assertInvalid(
                "repetition_penalty",
                "repetition_penalty must be > 0, got 0.0",
                b -> b.repetitionPenalty(0)),
        () ->
            assertInvalid(
                "presence_penalty",
                "presence_penalty must be in [-2, 2], got 2.5",
                b -> b.presencePenalty(2.5)),
        () ->
            assertInvalid(
                "frequency_penalty",
                "frequency_penalty must be in [-2, 2], got -3.0",
                b -> b.frequencyPenalty(-3)),
        () -> assertInvalid("min_tokens", "min_tokens must be >= 0, got -1", b -> b.minTokens(-1)),
        () ->
            assertInvalid(
                "min_tokens",
                "min_tokens must be <= max_tokens, got min_tokens 20 > max_tokens 16",
                b -> b.minTokens(20)),
        () -> assertInvalid("logprobs", "logprobs must be in [0, 20], got 21", b -> b.logprobs(21)),
        () ->
            assertInvalid(
                "stop", "stop[1] must be a non-empty string", b -> b.stop(List.of("a", ""))),
        () ->
            assertInvalid(
                "stop",
                "stop[0] must be a non-empty string",
                b -> b.stop(Arrays.asList((String) null))),
        () ->
            assertInvalid(
                "stop_token_ids",
                "stop_token_ids[1] = 99999 is outside the vocabulary (0..287)",
                b -> b.stopTokenIds(2, 99999)));
  }

  @Test
  void acceptsTheEdgesOfEachRange() {
    SamplingParams p =
        SamplingParams.builder()
            .temperature(0)
            .topP(1)
            .topK(-1)
            .minP(1)
            .presencePenalty(-2)
            .frequencyPenalty(2)
            .minTokens(16)
            .logprobs(20)
            .stopTokenIds(0, 287)
            .build();
    assertDoesNotThrow(() -> p.validate(1, CONTEXT, VOCAB));
  }

  @Test
  void rejectsAnEmptyPrompt() {
    InvalidRequestException e =
        assertThrows(
            InvalidRequestException.class,
            () -> SamplingParams.defaults().validate(0, CONTEXT, VOCAB));
    assertEquals("prompt", e.field());
    assertEquals("prompt has 0 tokens; give at least one", e.getMessage());
  }

  @Test
  void rejectsPromptPlusMaxTokensOverTheContextWithOpenAisWording() {
    SamplingParams p = SamplingParams.builder().maxTokens(100).build();
    assertDoesNotThrow(() -> p.validate(924, CONTEXT, VOCAB), "exactly the context fits");
    InvalidRequestException e =
        assertThrows(InvalidRequestException.class, () -> p.validate(925, CONTEXT, VOCAB));
    assertEquals("max_tokens", e.field());
    assertEquals(
        "This model's maximum context length is 1024 tokens. However, you requested 1025 tokens (925 in the messages,"
            + " 100 in the completion). Please reduce the length of the messages or completion.",
        e.getMessage());
    InvalidRequestException prompt =
        assertThrows(InvalidRequestException.class, () -> p.validate(2000, CONTEXT, VOCAB));
    assertEquals(
        "prompt", prompt.field(), "a prompt that alone fills the context is the prompt's fault");
  }

  private static void assertInvalid(
      String field, String message, UnaryOperator<SamplingParams.Builder> change) {
    SamplingParams p = change.apply(SamplingParams.builder()).build();
    InvalidRequestException e =
        assertThrows(InvalidRequestException.class, () -> p.validate(10, CONTEXT, VOCAB));
    assertEquals(message, e.getMessage());
    assertEquals(field, e.field(), "field of: " + message);
  }
}
