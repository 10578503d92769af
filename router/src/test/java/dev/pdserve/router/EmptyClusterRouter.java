package dev.pdserve.router;

import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.engine.PromptRenderer;
import dev.pdserve.model.tokenizer.ByteTokenizer;
import dev.pdserve.model.tokenizer.ChatTemplate;
import java.time.Duration;

/**
 * A real {@link Router} serving the tiny preset (byte tokenizer, ERNIE chat template) over a
 * cluster without nodes, for the API adapters' fuzz tests: a request runs every check the router
 * makes (rendering, tokenizing, sampling and context validation) and, having passed them, is
 * refused UNAVAILABLE because no prefill node is ACTIVE ({@link #passedValidation}). Nothing is
 * ever started, so no request needs ending.
 */
public final class EmptyClusterRouter {
  public static final ModelConfig MODEL = ModelPresets.get("tiny");

  private EmptyClusterRouter() {}

  /** The router's prompt renderer: the tiny preset's byte tokenizer and the ERNIE template. */
  public static PromptRenderer renderer() {
    return new PromptRenderer(ByteTokenizer.withVocabSize(MODEL.vocabSize()), ChatTemplate.ernie());
  }

  /**
   * A router over no nodes, without background rounds (lease renewal, stream watchdog); the caller
   * closes it.
   */
  public static Router create() {
    return new Router(
        RouterSettings.of(
                new RouterOptions(4, 4, 1),
                new InMemoryCluster(),
                new InMemoryNodeClients(),
                renderer(),
                MODEL)
            .withRoundPeriod(Duration.ZERO));
  }

  /** The refusal of a request that passed every check: there is no prefill node to run it. */
  public static boolean passedValidation(ServingException e) {
    return e.kind() == ServingException.Kind.UNAVAILABLE
        && e.getMessage().startsWith("no ACTIVE prefill node");
  }

  /** {@link #passedValidation} for a message as an adapter reports it. */
  public static boolean passedValidation(String message) {
    return message != null && message.startsWith("no ACTIVE prefill node");
  }
}
