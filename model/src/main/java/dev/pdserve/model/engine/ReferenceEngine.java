package dev.pdserve.model.engine;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.sampling.SampleResult;
import dev.pdserve.model.sampling.Sampler;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.tokenizer.ChatTemplate;
import dev.pdserve.model.tokenizer.Tokenizer;
import dev.pdserve.model.vision.VisionEncoder;
import dev.pdserve.model.weights.ModelWeights;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The single-process reference engine: the whole model (every expert in-process) with a KV cache,
 * one request at a time per calling thread. It is the oracle the distributed topologies are held
 * to: for greedy sampling, they must produce exactly its tokens.
 */
public final class ReferenceEngine implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(ReferenceEngine.class);
  private static final SecureRandom SEEDS = new SecureRandom();

  private final LoadedModel model;
  private final ModelWeights weights;
  private final OrtRuntime runtime;
  private final ModelRunner runner;
  private final ExpertCompute experts;
  private final ExpertBackend local;
  private final PromptRenderer renderer;
  // made at the first image (the full-size tower is ~3 GiB of fp32 a text-only run never needs);
  // null until then, and always for a text-only model
  private VisionEncoder vision;
  private boolean closed;

  /** The reference engine with {@link Numerics#DEFAULT} (fp32 KV). */
  public ReferenceEngine(LoadedModel model, OrtRuntime runtime) {
    this(model, runtime, Numerics.DEFAULT);
  }

  /** The reference engine computing with {@code numerics} (compare topologies of the same). */
  public ReferenceEngine(LoadedModel model, OrtRuntime runtime, Numerics numerics) {
    this.model = model;
    this.weights = new ModelWeights(model.config(), model.weights(), runtime, numerics.weights());
    ModelRunner r = null;
    ExpertCompute e = null;
    try {
      r = new ModelRunner(model.config(), weights, runtime, numerics);
      e = new ExpertCompute(model.config(), weights, runtime, ExpertCompute.HostedExperts.ALL);
    } catch (RuntimeException ex) {
      if (e != null) {
        e.close();
      }
      if (r != null) {
        r.close();
      }
      weights.close();
      throw ex;
    }
    this.runner = r;
    this.experts = e;
    this.runtime = runtime;
    this.local = new LocalExperts(e);
    PromptRenderer text = new PromptRenderer(model.tokenizer(), ChatTemplate.ernie());
    this.renderer = model.config().vision().map(text::withVision).orElse(text);
  }

  public ModelConfig config() {
    return model.config();
  }

  public Tokenizer tokenizer() {
    return model.tokenizer();
  }

  public PromptRenderer renderer() {
    return renderer;
  }

  public ModelRunner runner() {
    return runner;
  }

  public ExpertBackend experts() {
    return local;
  }

  /** Generates a completion, calling {@code listener} for every token as it is produced. */
  public GenerateResult generate(GenerateRequest req, TokenListener listener) {
    try (CloseableThreadContext.Instance ctx =
        CloseableThreadContext.put("request_id", req.requestId())) {
      long start = System.nanoTime();
      RenderedPrompt rendered = renderer.renderWithImages(req.prompt(), req.enableThinking());
      int[] prompt = rendered.ids();
      SamplingParams params = req.sampling();
      params.validate(prompt.length, config().maxPositions(), config().vocabSize());
      long seed = params.seed().orElseGet(SEEDS::nextLong);
      GenerationState state =
          new GenerationState(req.requestId(), prompt, params, seed, tokenizer());
      Sampler sampler = new Sampler(tokenizer().eosId());
      ContiguousKv kv = new ContiguousKv(config(), prompt.length + params.maxTokens());
      List<Double> logprobs = new ArrayList<>();

      PrefillInputs images =
          rendered.hasImages()
              ? PrefillInputs.of(rendered, config(), runner, visionEncoder().orElseThrow())
              : null;
      SequenceStep first =
          images == null ? SequenceStep.text(prompt, kv, true) : images.step(kv, true);
      float[] logits = runner.forward(List.of(first), local)[0];
      double prefillMillis = (System.nanoTime() - start) / 1e6;
      while (true) {
        SampleResult s = state.sample(logits, sampler);
        Emission e = state.accept(s.tokenId(), s.logprob());
        logprobs.add(s.logprob());
        listener.onToken(e);
        if (e.finished()) {
          double total = (System.nanoTime() - start) / 1e6;
          LOG.debug(
              "finished: {} prompt tokens, {} generated, {} in {} ms",
              prompt.length,
              state.generated(),
              e.finish().wireName(),
              total);
          return new GenerateResult(
              req.requestId(),
              state.generatedIds(),
              state.text(),
              e.finish(),
              e.stopReason(),
              prompt.length,
              0,
              logprobs.stream().mapToDouble(Double::doubleValue).toArray(),
              prefillMillis,
              total);
        }
        SequenceStep next =
            images == null
                ? SequenceStep.text(new int[] {s.tokenId()}, kv, true)
                : images.decode(s.tokenId(), kv);
        logits = runner.forward(List.of(next), local)[0];
      }
    }
  }

  public GenerateResult generate(GenerateRequest req) {
    return generate(req, TokenListener.NONE);
  }

  /** The vision encoder (made now if this is its first use), empty for a text-only model. */
  public synchronized Optional<VisionEncoder> visionEncoder() {
    if (vision == null && !closed && model.config().vision().isPresent()) {
      vision =
          new VisionEncoder(
              model.config(), weights, runtime, VisionEncoder.DEFAULT_ATTENTION_CHUNK);
    }
    return Optional.ofNullable(vision);
  }

  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    if (vision != null) {
      vision.close();
    }
    experts.close();
    runner.close();
    weights.close();
  }
}
