package dev.pdserve.model.engine;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.quant.WeightQuantization;
import dev.pdserve.model.sampling.Sampler;
import dev.pdserve.model.weights.ModelWeights;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * How far a quantized model is from the fp32 model with the same weights: for seeded prompts, both
 * read the prompt and then the fp32 model's own greedy continuation (teacher forcing), and at each
 * of those positions their next-token distributions are compared. Because both read the same tokens
 * until the first disagreement, the quantized model's free-running greedy output equals the fp32
 * one exactly up to the first position whose top-1 differs: that length is the identical greedy
 * prefix.
 */
public final class QuantizationEval {
  private QuantizationEval() {}

  /**
   * @param prompts number of prompts
   * @param promptLen tokens per prompt (seeded random ids)
   * @param tokens positions compared per prompt (the first is the prompt's last token)
   * @param seed seed of the prompts
   */
  public record Options(int prompts, int promptLen, int tokens, long seed) {
    public Options {
      if (prompts < 1 || promptLen < 1 || tokens < 1) {
        throw new IllegalArgumentException("prompts, prompt length and tokens must be >= 1");
      }
    }
  }

  /**
   * @param positions distributions compared
   * @param meanKl mean KL(fp32 ‖ quantized) of the next-token distributions, nats
   * @param p99Kl 99th percentile of that KL
   * @param maxKl largest KL
   * @param top1Agreement share of positions whose argmax agrees
   * @param meanIdenticalPrefix mean length of the identical greedy prefix, tokens (of {@code
   *     tokens})
   * @param fullyIdentical share of prompts whose whole greedy continuation is identical
   */
  public record Report(
      WeightQuantization quantization,
      Options options,
      int positions,
      double meanKl,
      double p99Kl,
      double maxKl,
      double top1Agreement,
      double meanIdenticalPrefix,
      double fullyIdentical) {}

  /** Compares {@code quant} with fp32 over {@code model}'s weights. */
  public static Report run(
      LoadedModel model, OrtRuntime runtime, WeightQuantization quant, Options o) {
    ModelConfig cfg = model.config();
    model
        .weights()
        .storedQuantization()
        .ifPresent(
            stored -> {
              throw new IllegalArgumentException(
                  model.weights().describe()
                      + " is stored quantized "
                      + stored.describe()
                      + ": it has no fp32 weights to compare with; evaluate the checkpoint it was"
                      + " converted from");
            });
    try (ModelWeights fw = new ModelWeights(cfg, model.weights(), runtime);
        ModelWeights qw = new ModelWeights(cfg, model.weights(), runtime, quant);
        ModelRunner fr = new ModelRunner(cfg, fw, runtime, Numerics.DEFAULT);
        ModelRunner qr = new ModelRunner(cfg, qw, runtime, Numerics.weights(quant));
        ExpertCompute fe = new ExpertCompute(cfg, fw, runtime, ExpertCompute.HostedExperts.ALL);
        ExpertCompute qe = new ExpertCompute(cfg, qw, runtime, ExpertCompute.HostedExperts.ALL)) {
      LocalExperts fl = new LocalExperts(fe);
      LocalExperts ql = new LocalExperts(qe);
      Random rnd = new Random(o.seed());
      List<Double> kls = new ArrayList<>();
      int agree = 0;
      long prefixSum = 0;
      int identical = 0;
      int lo = Math.min(32, cfg.vocabSize() - 1);
      for (int p = 0; p < o.prompts(); p++) {
        int[] prompt = new int[o.promptLen()];
        for (int t = 0; t < prompt.length; t++) {
          prompt[t] = lo + rnd.nextInt(Math.max(1, Math.min(cfg.vocabSize(), 288) - lo));
        }
        ContiguousKv fkv = new ContiguousKv(cfg, prompt.length + o.tokens());
        ContiguousKv qkv = new ContiguousKv(cfg, prompt.length + o.tokens());
        float[] fl0 = fr.forward(List.of(SequenceStep.text(prompt, fkv, true)), fl)[0];
        float[] ql0 = qr.forward(List.of(SequenceStep.text(prompt, qkv, true)), ql)[0];
        int prefix = -1;
        for (int s = 0; s < o.tokens(); s++) {
          kls.add(kl(fl0, ql0));
          int want = Sampler.argmax(fl0);
          boolean same = want == Sampler.argmax(ql0);
          agree += same ? 1 : 0;
          if (!same && prefix < 0) {
            prefix = s;
          }
          if (s + 1 < o.tokens()) {
            int[] next = {want};
            fl0 = fr.forward(List.of(SequenceStep.text(next, fkv, true)), fl)[0];
            ql0 = qr.forward(List.of(SequenceStep.text(next, qkv, true)), ql)[0];
          }
        }
        if (prefix < 0) {
          prefix = o.tokens();
          identical++;
        }
        prefixSum += prefix;
      }
      double[] sorted = kls.stream().mapToDouble(Double::doubleValue).toArray();
      Arrays.sort(sorted);
      double mean = Arrays.stream(sorted).average().orElse(0);
      int n = sorted.length;
      return new Report(
          quant,
          o,
          n,
          mean,
          sorted[Math.min(n - 1, (int) Math.ceil(0.99 * n) - 1)],
          sorted[n - 1],
          (double) agree / n,
          (double) prefixSum / o.prompts(),
          (double) identical / o.prompts());
    }
  }

  /** KL(softmax(p) ‖ softmax(q)) in nats, computed in double. */
  static double kl(float[] p, float[] q) {
    double[] lp = logSoftmax(p);
    double[] lq = logSoftmax(q);
    double s = 0;
    for (int i = 0; i < lp.length; i++) {
      s += Math.exp(lp[i]) * (lp[i] - lq[i]);
    }
    return Math.max(0, s);
  }

  private static double[] logSoftmax(float[] x) {
    double max = Double.NEGATIVE_INFINITY;
    for (float v : x) {
      max = Math.max(max, v);
    }
    double sum = 0;
    for (float v : x) {
      sum += Math.exp(v - max);
    }
    double log = Math.log(sum) + max;
    double[] out = new double[x.length];
    for (int i = 0; i < x.length; i++) {
      out[i] = x[i] - log;
    }
    return out;
  }
}
