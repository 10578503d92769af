package dev.pdserve.model.sampling;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Picks the next token from a row of logits, in vLLM's order:
 *
 * <ol>
 *   <li>penalties: repetition on prompt and output tokens (positive logits divided, negative
 *       multiplied, as HF and vLLM), then frequency and presence on output tokens only;
 *   <li>{@code min_tokens}: until that many tokens are generated, EOS (unless {@code ignore_eos})
 *       and the stop token ids cannot be chosen;
 *   <li>temperature 0 is greedy: the argmax, ties to the lowest id. Otherwise logits are divided by
 *       the temperature, then top-k, top-p and min-p truncate, and one token is drawn from the
 *       softmax of what is left.
 * </ol>
 *
 * <p><b>Randomness is stateless.</b> The draw for a step is a pure function of (seed, step), with
 * the step = {@link TokenHistory#generatedCount()}: a sequence that moves to another machine, or is
 * replayed, draws the same token from the same logits. The seed is the request's {@link
 * SamplingParams#seed()} when the client gave one, else {@code requestSeed}, which the server draws
 * once per request and carries with it. Arithmetic is bit-reproducible on every Java 17+ JVM (see
 * {@link DeterministicMath}).
 *
 * <p>Greedy decoding without penalties is one argmax pass over the caller's array with no
 * allocation. Other paths work in scratch buffers the sampler owns (sized to the vocabulary,
 * allocated once), so a {@code Sampler} is <b>not thread-safe</b>: use one per decoding thread. The
 * caller's logits are never modified.
 */
public final class Sampler {
  private static final float NEG_INF = Float.NEGATIVE_INFINITY;
  private static final long GOLDEN = 0x9E3779B97F4A7C15L;
  private static final int BUCKETS = 2048;

  private final int eosId;
  private float[] work = new float[0];
  private double[] weights = new double[0];
  private int[] candidates = new int[0];
  private long[] keys = new long[0];
  private final double[] bucketMass = new double[BUCKETS];

  /**
   * @param eosId the EOS token, masked while fewer than {@code min_tokens} are generated
   */
  public Sampler(int eosId) {
    if (eosId < 0) {
      throw new IllegalArgumentException("eosId must be >= 0, got " + eosId);
    }
    this.eosId = eosId;
  }

  /**
   * Samples the next token of a sequence.
   *
   * @param logits one row of logits over the vocabulary (not modified)
   * @param p validated sampling parameters
   * @param history the sequence's prompt and output so far; its generated count is the step
   * @param requestSeed the server's seed for this request, used when {@code p.seed()} is empty
   * @throws IllegalStateException if every token is masked out (all logits -inf or NaN)
   */
  public SampleResult sample(
      float[] logits, SamplingParams p, TokenHistory history, long requestSeed) {
    if (logits.length == 0) {
      throw new IllegalArgumentException("logits must not be empty");
    }
    boolean mask = history.generatedCount() < p.minTokens();
    if (p.isGreedy()) {
      return greedy(logits, p, history, mask);
    }
    long seed = p.seed().isPresent() ? p.seed().getAsLong() : requestSeed;
    return random(logits, p, history, mask, uniform(seed, history.generatedCount()));
  }

  /**
   * The uniform draw in [0, 1) for {@code step} of a request with {@code seed}: SplitMix64's
   * finaliser over the seed and the step, identical on every JVM.
   */
  public static double uniform(long seed, int step) {
    long z = mix64(mix64(seed) + GOLDEN * (step + 1L));
    return (z >>> 11) * 0x1.0p-53;
  }

  /** The index of the largest value (ties to the lowest index), or -1 when every value is -inf. */
  public static int argmax(float[] x) {
    int best = -1;
    float bestValue = NEG_INF;
    for (int i = 0; i < x.length; i++) {
      if (x[i] > bestValue) {
        bestValue = x[i];
        best = i;
      }
    }
    return best;
  }

  private SampleResult greedy(
      float[] logits, SamplingParams p, TokenHistory history, boolean mask) {
    float[] x = logits;
    if (mask || p.hasPenalties()) {
      x = copyToWork(logits);
      applyPenalties(x, p, history);
      if (mask) {
        applyMinTokensMask(x, p);
      }
    }
    int best = argmax(x);
    if (best < 0) {
      throw new IllegalStateException(allMaskedMessage(x.length));
    }
    float bestValue = x[best];
    if (p.logprobs() == 0) {
      return new SampleResult(best, Double.NaN, List.of());
    }
    double z = 0;
    for (float xi : x) {
      if (xi > NEG_INF) {
        z += DeterministicMath.exp((double) xi - bestValue);
      }
    }
    double logZ = StrictMath.log(z);
    int n = selectBest(x, null, x.length, p.logprobs());
    return new SampleResult(best, -logZ, topLogprobs(x, n, bestValue, logZ));
  }

  private SampleResult random(
      float[] logits, SamplingParams p, TokenHistory history, boolean mask, double u) {
    int v = logits.length;
    float[] x = copyToWork(logits);
    applyPenalties(x, p, history);
    if (mask) {
      applyMinTokensMask(x, p);
    }
    ensureScratch(v);
    int[] cand = candidates;
    double[] w = weights;
    float temperature = (float) p.temperature();
    float max = NEG_INF;
    int n = 0;
    for (int i = 0; i < v; i++) {
      float xi = x[i] / temperature;
      if (xi > NEG_INF) {
        x[i] = xi;
        cand[n++] = i;
        if (xi > max) {
          max = xi;
        }
      } else {
        x[i] = NEG_INF; // also NaN
      }
    }
    if (n == 0) {
      throw new IllegalStateException(allMaskedMessage(v));
    }
    boolean sorted = false;
    boolean weighted = false;

    if (p.topK() > 0 && p.topK() < n) {
      n = selectBest(x, cand, n, p.topK());
      for (int j = 0; j < n; j++) {
        cand[j] = (int) keys[j];
      }
      sorted = true;
    }

    if (p.topP() < 1.0) {
      double total = 0;
      for (int j = 0; j < n; j++) {
        int i = cand[j];
        w[i] = DeterministicMath.exp((double) x[i] - max);
        total += w[i];
      }
      weighted = true;
      double limit = p.topP() * total;
      if (sorted) {
        // keep the shortest most-likely prefix whose mass reaches top_p (at least one token)
        double before = 0;
        int kept = 0;
        while (kept < n && before < limit) {
          before += w[cand[kept]];
          kept++;
        }
        n = Math.max(1, kept);
      } else {
        n = nucleus(x, w, cand, n, max, limit);
      }
    }

    if (p.minP() > 0) {
      // p_i >= min_p * p_max  <=>  x_i >= max + ln(min_p)
      float floor = (float) (max + StrictMath.log(p.minP()));
      int kept = 0;
      for (int j = 0; j < n; j++) {
        int i = cand[j];
        if (x[i] >= floor) {
          cand[kept++] = i;
        }
      }
      n = kept; // never 0: the most likely token passes
    }

    double z = 0;
    for (int j = 0; j < n; j++) {
      int i = cand[j];
      if (!weighted) {
        w[i] = DeterministicMath.exp((double) x[i] - max);
      }
      z += w[i];
    }
    double target = u * z;
    double cumulative = 0;
    int chosen = cand[n - 1];
    for (int j = 0; j < n; j++) {
      cumulative += w[cand[j]];
      if (target < cumulative) {
        chosen = cand[j];
        break;
      }
    }
    double logZ = StrictMath.log(z);
    double logprob = (double) x[chosen] - max - logZ;
    if (p.logprobs() == 0) {
      return new SampleResult(chosen, logprob, List.of());
    }
    int top;
    if (sorted) {
      top = Math.min(p.logprobs(), n);
      for (int j = 0; j < top; j++) {
        keys[j] = key(x[cand[j]], cand[j]);
      }
    } else {
      top = selectBest(x, cand, n, p.logprobs());
    }
    return new SampleResult(chosen, logprob, topLogprobs(x, top, max, logZ));
  }

  /**
   * Moves the top-p nucleus of {@code cand[0..n)} to {@code cand[0..result)}: the fewest most
   * likely tokens whose mass reaches {@code limit} (at least one). Two sequential passes instead of
   * a sort: the first sums the mass in {@value #BUCKETS} buckets of logit distance below the
   * maximum, which locates the bucket where the cumulative mass crosses {@code limit}; the second
   * keeps every token of the buckets above it, and only the tokens of that one bucket are sorted.
   */
  private int nucleus(float[] x, double[] w, int[] cand, int n, float max, double limit) {
    float min = max;
    for (int j = 0; j < n; j++) {
      min = Math.min(min, x[cand[j]]);
    }
    float scale = max > min ? BUCKETS / (max - min) : 0f;
    Arrays.fill(bucketMass, 0.0);
    for (int j = 0; j < n; j++) {
      int i = cand[j];
      bucketMass[bucket(x[i], max, scale)] += w[i];
    }
    double acc = 0;
    int boundary = BUCKETS - 1;
    for (int b = 0; b < BUCKETS; b++) {
      if (acc + bucketMass[b] >= limit) {
        boundary = b;
        break;
      }
      acc += bucketMass[b];
    }
    if (boundary == BUCKETS - 1) { // crossed in the last bucket, or not at all through rounding
      acc = 0;
      for (int b = 0; b < BUCKETS - 1; b++) {
        acc += bucketMass[b];
      }
    }
    int kept = 0;
    int tied = 0;
    for (int j = 0; j < n; j++) {
      int i = cand[j];
      int b = bucket(x[i], max, scale);
      if (b < boundary) {
        cand[kept++] = i;
      } else if (b == boundary) {
        keys[tied++] = key(x[i], i);
      }
    }
    Arrays.sort(keys, 0, tied);
    for (int t = 0; t < tied && acc < limit; t++) {
      int i = (int) keys[t];
      acc += w[i];
      cand[kept++] = i;
    }
    return Math.max(1, kept);
  }

  private static int bucket(float logit, float max, float scale) {
    return Math.min(BUCKETS - 1, (int) ((max - logit) * scale));
  }

  /**
   * Puts the keys of the {@code k} best finite entries of {@code x} (among {@code from[0..count)},
   * or all of {@code x} when {@code from} is null) into {@code keys[0..result)}, best first.
   */
  private int selectBest(float[] x, int[] from, int count, int k) {
    ensureKeys(Math.max(k, 1));
    // max-heap of keys (the worst kept candidate on top); smaller key = better token
    int size = 0;
    for (int j = 0; j < count; j++) {
      int i = from == null ? j : from[j];
      float xi = x[i];
      if (!(xi > NEG_INF)) {
        continue;
      }
      long key = key(xi, i);
      if (size < k) {
        keys[size] = key;
        siftUp(keys, size++);
      } else if (key < keys[0]) {
        keys[0] = key;
        siftDown(keys, size);
      }
    }
    Arrays.sort(keys, 0, size);
    return size;
  }

  private List<SampleResult.TopLogprob> topLogprobs(float[] x, int n, float max, double logZ) {
    List<SampleResult.TopLogprob> top = new ArrayList<>(n);
    for (int j = 0; j < n; j++) {
      int i = (int) keys[j];
      top.add(new SampleResult.TopLogprob(i, (double) x[i] - max - logZ));
    }
    return top;
  }

  private void applyPenalties(float[] x, SamplingParams p, TokenHistory history) {
    int v = x.length;
    IntCountMap output = history.outputCounts();
    float rep = (float) p.repetitionPenalty();
    if (rep != 1f) {
      for (int id : history.promptDistinct()) {
        if (id < v) {
          x[id] = repetition(x[id], rep);
        }
      }
      for (int s = 0; s < output.capacity(); s++) {
        int id = output.keyAt(s);
        if (id >= 0 && id < v && !history.inPrompt(id)) {
          x[id] = repetition(x[id], rep);
        }
      }
    }
    float frequency = (float) p.frequencyPenalty();
    float presence = (float) p.presencePenalty();
    if (frequency != 0f || presence != 0f) {
      for (int s = 0; s < output.capacity(); s++) {
        int id = output.keyAt(s);
        if (id >= 0 && id < v) {
          x[id] -= frequency * output.countAt(s) + presence;
        }
      }
    }
  }

  private static float repetition(float logit, float penalty) {
    return logit > 0 ? logit / penalty : logit * penalty;
  }

  private void applyMinTokensMask(float[] x, SamplingParams p) {
    if (!p.ignoreEos() && eosId < x.length) {
      x[eosId] = NEG_INF;
    }
    for (int id : p.stopTokenIds()) {
      if (id >= 0 && id < x.length) {
        x[id] = NEG_INF;
      }
    }
  }

  private float[] copyToWork(float[] logits) {
    if (work.length != logits.length) {
      work = new float[logits.length];
    }
    System.arraycopy(logits, 0, work, 0, logits.length);
    return work;
  }

  private void ensureScratch(int v) {
    if (candidates.length < v) {
      candidates = new int[v];
      weights = new double[v];
    }
    ensureKeys(v);
  }

  private void ensureKeys(int n) {
    if (keys.length < n) {
      keys = new long[n];
    }
  }

  /** Orders by logit descending, then id ascending; the id is the low 32 bits. */
  private static long key(float logit, int id) {
    int bits = Float.floatToRawIntBits(logit);
    int sortable = bits ^ ((bits >> 31) & 0x7fffffff);
    return ((long) ~sortable << 32) | id;
  }

  private static void siftUp(long[] heap, int i) {
    long v = heap[i];
    while (i > 0) {
      int parent = (i - 1) >>> 1;
      if (heap[parent] >= v) {
        break;
      }
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = v;
  }

  private static void siftDown(long[] heap, int size) {
    long v = heap[0];
    int i = 0;
    while (true) {
      int child = 2 * i + 1;
      if (child >= size) {
        break;
      }
      if (child + 1 < size && heap[child + 1] > heap[child]) {
        child++;
      }
      if (heap[child] <= v) {
        break;
      }
      heap[i] = heap[child];
      i = child;
    }
    heap[i] = v;
  }

  private static long mix64(long z) {
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }

  private static String allMaskedMessage(int v) {
    return "no token can be sampled: all "
        + v
        + " logits are -inf or NaN after penalties and min_tokens masking";
  }
}
