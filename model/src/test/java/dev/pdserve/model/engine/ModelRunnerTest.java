package dev.pdserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelWeights;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class ModelRunnerTest {
  static ModelConfig cfg;
  static ModelWeights weights;
  static ModelRunner runner;
  static ExpertCompute experts;

  @BeforeAll
  static void setUp() {
    cfg = ModelPresets.get("tiny");
    OrtRuntime rt = OrtRuntime.shared();
    weights = new ModelWeights(cfg, new DummyWeights(cfg, 42), rt);
    runner = new ModelRunner(cfg, weights, rt);
    experts = new ExpertCompute(cfg, weights, rt, ExpertCompute.HostedExperts.ALL);
  }

  @AfterAll
  static void tearDown() {
    experts.close();
    runner.close();
    weights.close();
  }

  static int[] randomTokens(long seed, int n) {
    Random r = new Random(seed);
    int[] t = new int[n];
    for (int i = 0; i < n; i++) {
      t[i] = r.nextInt(cfg.vocabSize());
    }
    return t;
  }

  static int argmax(float[] l) {
    int best = 0;
    for (int i = 1; i < l.length; i++) {
      if (l[i] > l[best]) best = i;
    }
    return best;
  }

  @Test
  void sequenceResultDoesNotDependOnItsBatch() {
    LocalExperts local = new LocalExperts(experts);
    int[] a = randomTokens(1, 23);
    ContiguousKv kvAlone = new ContiguousKv(cfg, 64);
    float[] alone = runner.forward(List.of(SequenceStep.text(a, kvAlone, true)), local)[0];

    ContiguousKv kvA = new ContiguousKv(cfg, 64);
    ContiguousKv kvB = new ContiguousKv(cfg, 64);
    ContiguousKv kvC = new ContiguousKv(cfg, 64);
    float[][] batched =
        runner.forward(
            List.of(
                SequenceStep.text(randomTokens(2, 7), kvB, true),
                SequenceStep.text(a, kvA, true),
                SequenceStep.text(randomTokens(3, 40), kvC, true)),
            local);
    assertArrayEquals(alone, batched[1], "prefill logits changed when batched");
    // decode steps: alone vs batched with sequences of other lengths
    for (int step = 0; step < 4; step++) {
      int next = argmax(alone);
      alone = runner.forward(List.of(SequenceStep.text(new int[] {next}, kvAlone, true)), local)[0];
      float[][] d =
          runner.forward(
              List.of(
                  SequenceStep.text(new int[] {5 + step}, kvC, true),
                  SequenceStep.text(new int[] {next}, kvA, true),
                  SequenceStep.text(new int[] {9}, kvB, true)),
              local);
      assertArrayEquals(alone, d[1], "decode step " + step + " logits changed when batched");
    }
  }

  @Test
  void chunkedPrefillEqualsWholePrefill() {
    LocalExperts local = new LocalExperts(experts);
    int[] a = randomTokens(11, 50);
    ContiguousKv whole = new ContiguousKv(cfg, 64);
    float[] w = runner.forward(List.of(SequenceStep.text(a, whole, true)), local)[0];
    ContiguousKv chunked = new ContiguousKv(cfg, 8);
    float[] c = null;
    int[] cuts = {0, 1, 17, 18, 33, 50};
    for (int i = 0; i + 1 < cuts.length; i++) {
      int[] part = Arrays.copyOfRange(a, cuts[i], cuts[i + 1]);
      c = runner.forward(List.of(SequenceStep.text(part, chunked, i + 2 == cuts.length)), local)[0];
    }
    assertArrayEquals(w, c);
    assertEquals(50, chunked.length());
  }

  @Test
  void greedyWithCacheEqualsRecompute() {
    LocalExperts local = new LocalExperts(experts);
    int[] prompt = randomTokens(5, 12);
    ContiguousKv kv = new ContiguousKv(cfg, 16);
    float[] l = runner.forward(List.of(SequenceStep.text(prompt, kv, true)), local)[0];
    List<Integer> seq = new ArrayList<>();
    for (int t : prompt) seq.add(t);
    List<Integer> cached = new ArrayList<>();
    for (int i = 0; i < 10; i++) {
      int next = argmax(l);
      cached.add(next);
      l = runner.forward(List.of(SequenceStep.text(new int[] {next}, kv, true)), local)[0];
    }
    List<Integer> recomputed = new ArrayList<>();
    for (int i = 0; i < 10; i++) {
      int[] all = seq.stream().mapToInt(Integer::intValue).toArray();
      float[] lr =
          runner
              .forward(
                  List.of(SequenceStep.text(all, new ContiguousKv(cfg, all.length), true)), local)[
              0];
      int next = argmax(lr);
      recomputed.add(next);
      seq.add(next);
    }
    assertEquals(recomputed, cached);
  }
}
