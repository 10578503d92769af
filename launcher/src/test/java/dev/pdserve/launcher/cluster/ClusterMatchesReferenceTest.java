package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import dev.pdserve.api.v1.ChatMessage;
import dev.pdserve.api.v1.ChatMessages;
import dev.pdserve.api.v1.SamplingParams;
import dev.pdserve.api.v1.TokenIds;
import dev.pdserve.core.grpc.ProtoConversions;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.GenerateResult;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * DESIGN.md invariant 1 in one JVM with real servers: greedy outputs through router → prefill →
 * Flight → decode equal the single-process reference engine's, token for token.
 */
class ClusterMatchesReferenceTest {
  static ReferenceEngine reference;
  static LoadedModel model;

  @BeforeAll
  static void loadReference() {
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    reference = new ReferenceEngine(model, OrtRuntime.shared());
  }

  @AfterAll
  static void close() {
    reference.close();
    model.close();
  }

  /** A varied prompt set: 1 token to near the context, non-ASCII, thinking on and off. */
  static List<dev.pdserve.api.v1.GenerateRequest> prompts() {
    List<dev.pdserve.api.v1.GenerateRequest> out = new ArrayList<>();
    SamplingParams greedy = SamplingParams.newBuilder().setTemperature(0).setMaxTokens(12).build();
    out.add(req("one-token", greedy).setPromptTokenIds(TokenIds.newBuilder().addIds(65)).build());
    out.add(req("ascii", greedy).setMessages(chat("What is disaggregated serving?")).build());
    out.add(
        req("non-ascii", greedy).setMessages(chat("Grüße aus Köln — 你好，世界 🙂 ¿qué tal?")).build());
    out.add(
        req("no-thinking", greedy)
            .setMessages(chat("Explain MoE routing."))
            .setEnableThinking(false)
            .build());
    out.add(req("raw", greedy).setPrompt("The quick brown fox jumps over").build());
    StringBuilder longText = new StringBuilder();
    while (longText.length() < 1100) {
      longText.append("pdserve moves KV over Arrow Flight. ");
    }
    out.add(
        req("near-context", SamplingParams.newBuilder().setTemperature(0).setMaxTokens(8).build())
            .setPrompt(longText.substring(0, 1010))
            .build());
    return out;
  }

  static dev.pdserve.api.v1.GenerateRequest.Builder req(String id, SamplingParams p) {
    return dev.pdserve.api.v1.GenerateRequest.newBuilder().setRequestId(id).setParams(p);
  }

  static ChatMessages chat(String user) {
    return ChatMessages.newBuilder()
        .addMessages(ChatMessage.newBuilder().setRole("user").setContent(user))
        .build();
  }

  /**
   * What {@code engine} (a reference engine of some numerics) generates for {@code r}: the tokens
   * every topology in the same numerics must match.
   */
  static int[] expected(ReferenceEngine engine, dev.pdserve.api.v1.GenerateRequest r) {
    return referenceResult(engine, r).tokenIds();
  }

  /** What {@code engine} (a reference engine of some numerics) generates for {@code r}. */
  static GenerateResult referenceResult(
      ReferenceEngine engine, dev.pdserve.api.v1.GenerateRequest r) {
    Prompt p =
        switch (r.getInputCase()) {
          case MESSAGES ->
              new Prompt.Messages(
                  r.getMessages().getMessagesList().stream()
                      .map(
                          m ->
                              new dev.pdserve.model.tokenizer.ChatMessage(
                                  m.getRole(), m.getContent()))
                      .toList());
          case PROMPT -> new Prompt.Text(r.getPrompt());
          case PROMPT_TOKEN_IDS ->
              new Prompt.Tokens(
                  r.getPromptTokenIds().getIdsList().stream()
                      .mapToInt(Integer::intValue)
                      .toArray());
          default -> throw new AssertionError();
        };
    return engine.generate(
        new GenerateRequest(
            r.getRequestId(),
            p,
            ProtoConversions.sampling(r.getParams()),
            !r.hasEnableThinking() || r.getEnableThinking()));
  }

  @ParameterizedTest(name = "{0}P/{1}D/{2}E in one JVM")
  @CsvSource({"1,1,0", "1,1,2", "2,2,4"})
  void topologyMatchesReference(int prefill, int decode, int shards) throws Exception {
    try (InJvmCluster c = InJvmCluster.start(prefill, decode, shards)) {
      for (dev.pdserve.api.v1.GenerateRequest r : prompts()) {
        InJvmCluster.Result got = c.generate(r);
        assertNotNull(got.completion(), r.getRequestId() + " ended without a completion");
        assertArrayEquals(
            expected(reference, r),
            got.tokenIds(),
            "cluster tokens differ from the reference for " + r.getRequestId());
        assertEquals(got.tokenIds().length, got.completion().getUsage().getCompletionTokens());
      }
      c.awaitNoKvHeld();
    }
  }
}
