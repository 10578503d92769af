package dev.pdserve.expert;

import static dev.pdserve.expert.TinyModel.CFG;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.experts.RemoteExperts;
import dev.pdserve.model.engine.ContiguousKv;
import dev.pdserve.model.engine.Emission;
import dev.pdserve.model.engine.ExpertBackend;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.GenerateResult;
import dev.pdserve.model.engine.GenerationState;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.engine.SequenceStep;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.sampling.SampleResult;
import dev.pdserve.model.sampling.Sampler;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelWeights;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * End to end: the reference engine's model runner with its routed experts on remote shards
 * generates exactly the reference engine's greedy tokens.
 */
class RemoteGenerationTest {
  static final List<Prompt> PROMPTS =
      List.of(
          Prompt.user("What is the capital of France?"),
          Prompt.text("Once upon a time"),
          Prompt.user("Explain mixture-of-experts routing in one sentence, please."),
          Prompt.tokens(1, 7, 99, 120, 33, 250, 8));
  static final SamplingParams GREEDY =
      SamplingParams.builder().temperature(0).maxTokens(20).ignoreEos(true).build();

  static LoadedModel model;
  static ReferenceEngine engine;
  static ModelWeights shardWeights;
  ShardCluster cluster;

  @BeforeAll
  static void setUp() {
    model = LoadedModel.load(ModelSpec.preset("tiny", TinyModel.SEED));
    engine = new ReferenceEngine(model, OrtRuntime.shared());
    shardWeights =
        new ModelWeights(CFG, new DummyWeights(CFG, TinyModel.SEED), OrtRuntime.shared());
  }

  @AfterAll
  static void tearDown() {
    engine.close();
    shardWeights.close();
    model.close();
  }

  @AfterEach
  void closeCluster() {
    if (cluster != null) {
      cluster.close();
    }
  }

  /** Greedy tokens and the logits of every step. */
  record Run(int[] tokens, List<float[]> logits) {}

  /** ReferenceEngine.generate's loop, with the routed experts given. */
  static Run generate(Prompt prompt, ExpertBackend experts) {
    List<float[]> steps = new ArrayList<>();
    int[] ids = engine.renderer().render(prompt, false);
    GenerationState state = new GenerationState("remote", ids, GREEDY, 0, engine.tokenizer());
    Sampler sampler = new Sampler(engine.tokenizer().eosId());
    ContiguousKv kv = new ContiguousKv(CFG, ids.length + GREEDY.maxTokens());
    float[] logits = engine.runner().forward(List.of(SequenceStep.text(ids, kv, true)), experts)[0];
    while (true) {
      steps.add(logits);
      SampleResult s = state.sample(logits, sampler);
      Emission e = state.accept(s.tokenId(), s.logprob());
      if (e.finished()) {
        return new Run(state.generatedIds(), steps);
      }
      logits =
          engine.runner()
              .forward(List.of(SequenceStep.text(new int[] {s.tokenId()}, kv, true)), experts)[0];
    }
  }

  private void assertSameTokensAsReference(RemoteExperts remote) {
    for (int i = 0; i < PROMPTS.size(); i++) {
      GenerateResult ref =
          engine.generate(new GenerateRequest("ref-" + i, PROMPTS.get(i), GREEDY, false));
      Run got = generate(PROMPTS.get(i), remote);
      assertEquals(GREEDY.maxTokens(), ref.tokenIds().length);
      assertArrayEquals(
          ref.tokenIds(),
          got.tokens(),
          "prompt "
              + i
              + ": remote experts changed the greedy tokens: reference "
              + Arrays.toString(ref.tokenIds())
              + ", remote "
              + Arrays.toString(got.tokens()));
      // the dummy model's greedy text is repetitive, so hold every step's logits to the same bits
      // too
      Run local = generate(PROMPTS.get(i), engine.experts());
      assertArrayEquals(
          ref.tokenIds(),
          local.tokens(),
          "prompt " + i + ": the test's loop differs from ReferenceEngine's");
      for (int step = 0; step < local.logits().size(); step++) {
        String diff =
            TinyModel.firstDifference(
                local.logits().get(step), got.logits().get(step), CFG.vocabSize());
        int p = i;
        int st = step;
        assertNull(diff, () -> "prompt " + p + " step " + st + " logits: " + diff);
      }
    }
  }

  @Test
  void greedyTokensMatchReferenceWithTwoShards() {
    cluster = ShardCluster.start(shardWeights, Map.of("shard-a", "0-31", "shard-b", "32-63"));
    RemoteExperts remote = cluster.remote();
    assertSameTokensAsReference(remote);
    // every MoE layer of every step went remote
    int moe = TinyModel.moeLayers().size();
    assertEquals((long) PROMPTS.size() * GREEDY.maxTokens() * moe, remote.metrics().calls());
    assertTrue(
        remote.metrics().shard("shard-a").tokens() > 0
            && remote.metrics().shard("shard-b").tokens() > 0);
  }

  @Test
  void greedyTokensMatchReferenceWithFourShards() {
    cluster =
        ShardCluster.start(
            shardWeights, Map.of("s0", "0-15", "s1", "16-31", "s2", "32-47", "s3", "48-63"));
    assertSameTokensAsReference(cluster.remote());
  }

  @Test
  void visionRowsGiveIdenticalLogits() {
    cluster = ShardCluster.start(shardWeights, Map.of("shard-a", "0-31", "shard-b", "32-63"));
    RemoteExperts remote = cluster.remote();
    Random rnd = new Random(9);
    int n = 30;
    int[] tokens = new int[n];
    boolean[] vision = new boolean[n];
    for (int i = 0; i < n; i++) {
      tokens[i] = 3 + rnd.nextInt(250);
      vision[i] = i >= 5 && i < 25; // an image's worth of tokens in the middle
    }
    ContiguousKv kvLocal = new ContiguousKv(CFG, n);
    ContiguousKv kvRemote = new ContiguousKv(CFG, n);
    float[] a =
        engine.runner()
            .forward(
                List.of(new SequenceStep(tokens, vision, null, kvLocal, true)), engine.experts())[
            0];
    float[] b =
        engine.runner()
            .forward(List.of(new SequenceStep(tokens, vision, null, kvRemote, true)), remote)[0];
    assertNull(
        TinyModel.firstDifference(a, b, CFG.vocabSize()),
        "logits after a prompt with vision tokens");
    long visionTokens = 0;
    for (int layer : TinyModel.moeLayers()) {
      for (int e = 0; e < 64; e++) {
        visionTokens +=
            cluster.shard("shard-a").stats().tokens(layer, 1, e)
                + cluster.shard("shard-b").stats().tokens(layer, 1, e);
      }
    }
    assertEquals(
        20L * CFG.topK() * TinyModel.moeLayers().size(),
        visionTokens,
        "vision rows went to vision experts");
  }
}
