package dev.pdserve.router;

import com.google.common.testing.FakeTicker;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.PromptRenderer;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.tokenizer.ByteTokenizer;
import dev.pdserve.model.tokenizer.ChatTemplate;
import java.time.Duration;

/**
 * A real {@link Router} over in-memory nodes ({@link InMemoryCluster}, {@link InMemoryNodeClients})
 * on a {@link FakeTicker}, with no background threads (tests run the lease and watchdog rounds),
 * the default failure handling and, unless a test asks, no refusals for load.
 */
final class RouterHarness implements AutoCloseable {
  static final ModelConfig MODEL = ModelPresets.get("tiny");

  final FakeTicker ticker = new FakeTicker();
  final InMemoryCluster cluster = new InMemoryCluster();
  final InMemoryNodeClients clients = new InMemoryNodeClients();
  final RecordingMetrics metrics = new RecordingMetrics();
  final Router router;

  /** A request the test submitted: the router's handle and what the client received. */
  record Submitted(InFlightRequest handle, RecordingSink sink) {
    String id() {
      return handle.requestId();
    }
  }

  RouterHarness(RouterOptions options, PrefixRouting prefixRouting) {
    this(options, prefixRouting, FailureHandling.DEFAULTS, OverloadLimits.off());
  }

  RouterHarness(
      RouterOptions options,
      PrefixRouting prefixRouting,
      FailureHandling failures,
      OverloadLimits overload) {
    ticker.advance(Duration.ofHours(1)); // deadlines are never 0 ("none")
    PromptRenderer renderer =
        new PromptRenderer(ByteTokenizer.withVocabSize(MODEL.vocabSize()), ChatTemplate.ernie());
    router =
        new Router(
            RouterSettings.of(options, cluster, clients, renderer, MODEL)
                .withMetrics(metrics)
                .withPrefixRouting(prefixRouting)
                .withTicker(ticker)
                .withRoundPeriod(Duration.ZERO)
                .withFailureHandling(failures)
                .withOverloadLimits(overload));
  }

  static RouterHarness withOptions(int maxActive, int maxQueued, int prefillAttempts) {
    return new RouterHarness(
        new RouterOptions(maxActive, maxQueued, prefillAttempts), PrefixRouting.disabled());
  }

  /** Submits {@code id}: a prompt of {@code promptTokens} tokens, up to 16 new tokens. */
  Submitted submit(String id, int promptTokens, long deadlineNanos) {
    return submit(id, promptTokens, deadlineNanos, 16);
  }

  /** Submits {@code id}: a prompt of {@code promptTokens} tokens, up to {@code maxTokens}. */
  Submitted submit(String id, int promptTokens, long deadlineNanos, int maxTokens) {
    int[] prompt = new int[promptTokens];
    for (int i = 0; i < promptTokens; i++) {
      prompt[i] = 40 + i % 200; // within the tiny vocabulary
    }
    RecordingSink sink = new RecordingSink();
    GenerateRequest req =
        new GenerateRequest(
            id,
            new Prompt.Tokens(prompt),
            SamplingParams.builder().temperature(0).maxTokens(maxTokens).seed(7).build(),
            false);
    return new Submitted(router.submit(req, sink, deadlineNanos), sink);
  }

  Submitted submit(String id) {
    return submit(id, 4, 0);
  }

  /** The time {@code d} from now on the router's clock, as a deadline. */
  long deadlineIn(Duration d) {
    return ticker.read() + d.toNanos();
  }

  @Override
  public void close() {
    router.close();
  }
}
