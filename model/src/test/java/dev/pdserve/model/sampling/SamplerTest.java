package dev.pdserve.model.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class SamplerTest {
  private static final int EOS = 2;
  private static final int[] PROMPT = {10, 11, 12};

  private final Sampler sampler = new Sampler(EOS);

  @Test
  void greedyPicksTheArgmaxAndTheLowestIdOnTies() {
    float[] logits = {0.1f, 3.0f, -2f, 3.0f, Float.NEGATIVE_INFINITY, Float.NaN};
    float[] copy = logits.clone();
    SampleResult r = sampler.sample(logits, SamplingParams.greedy(4), history(), 1);
    assertEquals(1, r.tokenId());
    assertTrue(Double.isNaN(r.logprob()), "logprob is not computed on the bare greedy path");
    assertArrayEquals(copy, logits, "the caller's logits must not change");
  }

  @Test
  void greedyReturnsLogprobsOfTheSoftmaxWhenAsked() {
    float[] logits = logitsOf(0.5, 0.3, 0.2);
    SampleResult r =
        sampler.sample(
            logits, SamplingParams.builder().temperature(0).logprobs(3).build(), history(), 1);
    assertEquals(0, r.tokenId());
    assertEquals(Math.log(0.5), r.logprob(), 1e-6);
    assertEquals(
        List.of(0, 1, 2), r.topLogprobs().stream().map(SampleResult.TopLogprob::tokenId).toList());
    assertEquals(Math.log(0.3), r.topLogprobs().get(1).logprob(), 1e-6);
    assertEquals(Math.log(0.2), r.topLogprobs().get(2).logprob(), 1e-6);
  }

  @Test
  void topKOfOneEqualsGreedy() {
    SplittableRandom rnd = new SplittableRandom(3);
    for (int trial = 0; trial < 50; trial++) {
      float[] logits = randomLogits(rnd, 500);
      int greedy = sampler.sample(logits, SamplingParams.greedy(4), history(), trial).tokenId();
      SamplingParams topK1 = SamplingParams.builder().temperature(1.3).topK(1).build();
      SampleResult r = sampler.sample(logits, topK1, history(), trial);
      assertEquals(greedy, r.tokenId(), "trial " + trial);
      assertEquals(0.0, r.logprob(), 1e-12, "the only candidate has probability 1");
    }
  }

  @Test
  void samplesInProportionToTheSoftmax() {
    float[] logits = logitsOf(0.5, 0.3, 0.2);
    int[] counts = drawCounts(logits, SamplingParams.defaults(), 20_000);
    assertEquals(0.5, counts[0] / 20_000.0, 0.02, Arrays.toString(counts));
    assertEquals(0.3, counts[1] / 20_000.0, 0.02, Arrays.toString(counts));
    assertEquals(0.2, counts[2] / 20_000.0, 0.02, Arrays.toString(counts));
  }

  @Test
  void temperatureSharpensTheDistribution() {
    // at T = 0.5 the probabilities are proportional to p^2: 25:9:4
    int[] counts =
        drawCounts(
            logitsOf(0.5, 0.3, 0.2), SamplingParams.builder().temperature(0.5).build(), 20_000);
    assertEquals(25.0 / 38, counts[0] / 20_000.0, 0.02, Arrays.toString(counts));
    assertEquals(4.0 / 38, counts[2] / 20_000.0, 0.02, Arrays.toString(counts));
  }

  @Test
  void sameSeedAndStepGiveTheSameTokenOnAFreshSampler() {
    float[] logits = randomLogits(new SplittableRandom(5), 1000);
    SamplingParams p = SamplingParams.builder().temperature(1.0).build();
    int[] first = generate(new Sampler(EOS), logits, p, 1234, 40);
    int[] again = generate(new Sampler(EOS), logits, p, 1234, 40);
    assertArrayEquals(first, again, "same seed, same tokens");
    // step k alone, from a history rebuilt elsewhere, gives the token of step k
    for (int k : new int[] {0, 7, 39}) {
      TokenHistory rebuilt = TokenHistory.of(PROMPT, Arrays.copyOf(first, k));
      assertEquals(
          first[k], new Sampler(EOS).sample(logits, p, rebuilt, 1234).tokenId(), "step " + k);
      assertEquals(
          first[k],
          sampler.sample(logits, p, rebuilt, 1234).tokenId(),
          "step " + k + " sampled twice");
    }
  }

  @Test
  void differentSeedsGiveDifferentTokens() {
    float[] flat = new float[64]; // uniform over 64 tokens
    SamplingParams p = SamplingParams.defaults();
    Set<Integer> firstTokens = new HashSet<>();
    for (long seed = 0; seed < 200; seed++) {
      firstTokens.add(sampler.sample(flat, p, history(), seed).tokenId());
    }
    // 200 uniform draws over 64 values hit ~62 distinct ones; a seed-independent draw hits 1
    assertTrue(
        firstTokens.size() > 45, "distinct first tokens over 200 seeds: " + firstTokens.size());
    assertFalse(
        Arrays.equals(generate(sampler, flat, p, 1, 32), generate(sampler, flat, p, 2, 32)),
        "seeds 1 and 2 produced the same 32 tokens");
  }

  @Test
  void aClientSeedOverridesTheServerSeed() {
    float[] flat = new float[64];
    SamplingParams seeded = SamplingParams.builder().seed(99).build();
    int a = sampler.sample(flat, seeded, history(), 1).tokenId();
    int b = sampler.sample(flat, seeded, history(), 2).tokenId();
    assertEquals(a, b, "server seeds 1 and 2 must not matter when the client gave a seed");
    assertEquals(sampler.sample(flat, SamplingParams.defaults(), history(), 99).tokenId(), a);
  }

  @Test
  void theUniformDrawIsAFixedFunctionOfSeedAndStep() {
    // pinned bits: if these change, tokens sampled for a seed change across versions and machines
    assertEquals(0x1.31367e26140c7p-1, Sampler.uniform(42, 0), 0.0, "uniform(42, 0)");
    assertEquals(0.34292451904464716, Sampler.uniform(-7, 1000), 0.0, "uniform(-7, 1000)");
    assertNotEquals(Sampler.uniform(42, 0), Sampler.uniform(42, 1));
    assertNotEquals(Sampler.uniform(42, 0), Sampler.uniform(43, 0));
    SplittableRandom rnd = new SplittableRandom(1);
    for (int i = 0; i < 1000; i++) {
      double u = Sampler.uniform(rnd.nextLong(), rnd.nextInt(1 << 20));
      assertTrue(u >= 0 && u < 1, "u = " + u);
    }
  }

  @Test
  void topKRestrictsTheSupport() {
    int[] counts =
        drawCounts(logitsOf(0.4, 0.3, 0.2, 0.1), SamplingParams.builder().topK(2).build(), 5_000);
    assertEquals(0, counts[2] + counts[3], "sampled outside the top 2: " + Arrays.toString(counts));
    assertEquals(4.0 / 7, counts[0] / 5_000.0, 0.03, Arrays.toString(counts));
  }

  @Test
  void topPNeverSamplesOutsideTheNucleus() {
    // 0.5 + 0.3 >= 0.75: the nucleus is {0, 1}
    int[] counts =
        drawCounts(
            logitsOf(0.5, 0.3, 0.15, 0.05), SamplingParams.builder().topP(0.75).build(), 5_000);
    assertEquals(
        0, counts[2] + counts[3], "sampled outside the nucleus: " + Arrays.toString(counts));
    assertEquals(0.625, counts[0] / 5_000.0, 0.03, Arrays.toString(counts));
  }

  @Test
  void topPOnALargeVocabularyKeepsExactlyTheNucleus() {
    SplittableRandom rnd = new SplittableRandom(11);
    for (double sigma : new double[] {1, 3, 8}) { // flat to peaked
      float[] logits = randomLogits(rnd, 20_000, sigma);
      for (double topP : new double[] {0.05, 0.6, 0.95}) {
        double[] probs = probs(logits);
        Set<Integer> nucleus = bruteForceNucleus(logits, topP);
        double nucleusMass = nucleus.stream().mapToDouble(id -> probs[id]).sum();
        SamplingParams p = SamplingParams.builder().topP(topP).build();
        for (long seed = 0; seed < 40; seed++) {
          SampleResult r = sampler.sample(logits, p, history(), seed);
          String where = "sigma " + sigma + ", top_p " + topP + ", seed " + seed;
          assertTrue(
              nucleus.contains(r.tokenId()),
              where + ": token " + r.tokenId() + " is outside the nucleus");
          // log p = log(p_i / mass of the kept set): the kept set has exactly the nucleus' mass
          double impliedMass = Math.exp(Math.log(probs[r.tokenId()]) - r.logprob());
          assertEquals(
              nucleusMass, impliedMass, 1e-9 * nucleusMass, where + ": mass of the kept set");
        }
      }
    }
  }

  @Test
  void minPDropsUnlikelyTokens() {
    // threshold 0.2 * 0.5 = 0.1: token 3 (0.05) is out
    int[] counts =
        drawCounts(
            logitsOf(0.5, 0.3, 0.15, 0.05), SamplingParams.builder().minP(0.2).build(), 5_000);
    assertEquals(0, counts[3], "sampled below min_p: " + Arrays.toString(counts));
    assertTrue(
        counts[2] > 0, "token 2 is above min_p and should appear: " + Arrays.toString(counts));
  }

  @Test
  void repetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOfSeenTokens() {
    SamplingParams p = SamplingParams.builder().temperature(0).repetitionPenalty(1.2).build();
    // token 0 is in the prompt: 2.0 / 1.2 = 1.67 < 1.9
    assertEquals(
        1,
        sampler.sample(new float[] {2.0f, 1.9f}, p, new TokenHistory(new int[] {0}), 0).tokenId());
    // token 0 was generated: -1.0 * 1.2 = -1.2 < -1.1
    assertEquals(
        1,
        sampler
            .sample(new float[] {-1.0f, -1.1f}, p, TokenHistory.of(new int[] {5}, new int[] {0}), 0)
            .tokenId());
    assertEquals(
        0,
        sampler.sample(new float[] {2.0f, 1.9f}, p, history(), 0).tokenId(),
        "unseen tokens keep logits");
  }

  @Test
  void presenceAndFrequencyPenaltiesApplyToOutputTokensOnly() {
    float[] logits = {1.0f, 0.9f, -5f};
    SamplingParams presence = SamplingParams.builder().temperature(0).presencePenalty(0.5).build();
    assertEquals(
        0,
        sampler.sample(logits, presence, new TokenHistory(new int[] {0, 0}), 0).tokenId(),
        "prompt only");
    assertEquals(
        1,
        sampler
            .sample(logits, presence, TokenHistory.of(new int[] {2}, new int[] {0}), 0)
            .tokenId());
    SamplingParams frequency =
        SamplingParams.builder().temperature(0).frequencyPenalty(0.1).build();
    assertEquals(
        0,
        sampler
            .sample(logits, frequency, TokenHistory.of(new int[] {2}, new int[] {2}), 0)
            .tokenId());
    // two occurrences: 1.0 - 0.2 = 0.8 < 0.9
    assertEquals(
        1,
        sampler
            .sample(logits, frequency, TokenHistory.of(new int[] {2}, new int[] {0, 0}), 0)
            .tokenId());
  }

  @Test
  void minTokensMasksEosAndStopTokensUntilReached() {
    float[] logits = {0f, 0f, 5f, 0f, 4f, 1f}; // EOS (2) first, stop token 4 second, then 5
    SamplingParams p = SamplingParams.builder().temperature(0).minTokens(2).stopTokenIds(4).build();
    assertEquals(5, sampler.sample(logits, p, TokenHistory.of(PROMPT, new int[] {7}), 0).tokenId());
    assertEquals(
        EOS, sampler.sample(logits, p, TokenHistory.of(PROMPT, new int[] {7, 7}), 0).tokenId());
    SamplingParams ignoreEos = p.toBuilder().ignoreEos(true).build();
    assertEquals(
        EOS,
        sampler.sample(logits, ignoreEos, TokenHistory.of(PROMPT, new int[] {7}), 0).tokenId(),
        "with ignore_eos, EOS is an ordinary token and is not masked");
    SamplingParams random = p.toBuilder().temperature(1).build();
    for (long seed = 0; seed < 200; seed++) {
      int id = sampler.sample(logits, random, history(), seed).tokenId();
      assertTrue(id != EOS && id != 4, "seed " + seed + " sampled masked token " + id);
    }
  }

  @Test
  void sampledLogprobsDescribeTheTruncatedDistribution() {
    SamplingParams p = SamplingParams.builder().topK(2).logprobs(3).build();
    SampleResult r = sampler.sample(logitsOf(0.4, 0.4, 0.2), p, history(), 8);
    assertEquals(Math.log(0.5), r.logprob(), 1e-6, "two equal candidates after top_k=2");
    assertEquals(2, r.topLogprobs().size(), "only the support is listed: " + r.topLogprobs());
    assertEquals(0, r.topLogprobs().get(0).tokenId(), "ties list the lower id first");
  }

  @Test
  void failsWhenEveryTokenIsMasked() {
    float[] logits = {Float.NEGATIVE_INFINITY, Float.NaN, Float.NEGATIVE_INFINITY};
    IllegalStateException e =
        assertThrows(
            IllegalStateException.class,
            () -> sampler.sample(logits, SamplingParams.defaults(), history(), 0));
    assertTrue(e.getMessage().contains("no token can be sampled"), e.getMessage());
    assertThrows(
        IllegalStateException.class,
        () -> sampler.sample(logits, SamplingParams.greedy(1), history(), 0));
  }

  @Test
  void deterministicExpMatchesMathExp() {
    for (double x = -740; x <= 700; x += 0.37) {
      double expected = Math.exp(x);
      // relative 1e-14 for normal results; one ulp of the subnormal range below e^-708
      double tolerance = Math.max(expected * 1e-14, 2 * Double.MIN_VALUE);
      assertEquals(expected, DeterministicMath.exp(x), tolerance, "exp(" + x + ")");
    }
    assertEquals(1.0, DeterministicMath.exp(0.0));
    assertEquals(0.0, DeterministicMath.exp(Double.NEGATIVE_INFINITY));
  }

  private int[] drawCounts(float[] logits, SamplingParams p, int draws) {
    int[] counts = new int[logits.length];
    for (long seed = 0; seed < draws; seed++) {
      counts[sampler.sample(logits, p, history(), seed).tokenId()]++;
    }
    return counts;
  }

  private static int[] generate(Sampler s, float[] logits, SamplingParams p, long seed, int n) {
    TokenHistory h = history();
    int[] out = new int[n];
    for (int i = 0; i < n; i++) {
      out[i] = s.sample(logits, p, h, seed).tokenId();
      h.append(out[i]);
    }
    return out;
  }

  private static Set<Integer> bruteForceNucleus(float[] logits, double topP) {
    Integer[] order = new Integer[logits.length];
    for (int i = 0; i < order.length; i++) {
      order[i] = i;
    }
    Arrays.sort(order, (a, b) -> Float.compare(logits[b], logits[a]));
    double max = logits[order[0]];
    double z = 0;
    for (float x : logits) {
      z += Math.exp(x - max);
    }
    Set<Integer> nucleus = new HashSet<>();
    double before = 0;
    for (int i : order) {
      if (before >= topP) {
        break;
      }
      nucleus.add(i);
      before += Math.exp(logits[i] - max) / z;
    }
    return nucleus;
  }

  private static TokenHistory history() {
    return new TokenHistory(PROMPT);
  }

  private static float[] logitsOf(double... probs) {
    float[] logits = new float[probs.length];
    for (int i = 0; i < probs.length; i++) {
      logits[i] = (float) Math.log(probs[i]);
    }
    return logits;
  }

  private static float[] randomLogits(SplittableRandom rnd, int n) {
    return randomLogits(rnd, n, 3);
  }

  private static float[] randomLogits(SplittableRandom rnd, int n, double sigma) {
    float[] logits = new float[n];
    for (int i = 0; i < n; i++) {
      logits[i] = (float) (rnd.nextGaussian() * sigma);
    }
    return logits;
  }

  private static double[] probs(float[] logits) {
    double max = Double.NEGATIVE_INFINITY;
    for (float x : logits) {
      max = Math.max(max, x);
    }
    double z = 0;
    for (float x : logits) {
      z += Math.exp(x - max);
    }
    double[] p = new double[logits.length];
    for (int i = 0; i < p.length; i++) {
      p[i] = Math.exp(logits[i] - max) / z;
    }
    return p;
  }
}
