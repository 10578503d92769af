package dev.pdserve.simulator;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.engine.ContiguousKv;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.LocalExperts;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.SequenceStep;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.ModelWeights;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;

/**
 * Fits a {@link CostModel} to the real engine on this machine: times prefill steps of several
 * prompt lengths ({@code a + b·t + c·t²}) and decode steps of several batch sizes and context
 * lengths ({@code a + b·B + c·context}) with {@link ModelRunner} and in-process experts, then
 * solves the least-squares fits. Queue sizes (chunk, batch budget, max batch) are the real nodes'
 * defaults; KV transfer and switch times are the figures measured in docs/PERFORMANCE.md on
 * loopback.
 */
public final class EngineCalibration {
  private EngineCalibration() {}

  /**
   * Measures {@code spec} (e.g. {@code ModelSpec.preset("tiny", 42)}) with ORT on {@code threads}
   * threads (0 = all).
   */
  public static CostModel measure(ModelSpec spec, int threads) {
    OrtRuntime rt = OrtRuntime.shared(new OrtRuntime.RuntimeOptions(threads, false, true));
    try (LoadedModel m = LoadedModel.load(spec);
        ModelWeights w = new ModelWeights(m.config(), m.weights(), rt);
        ModelRunner runner = new ModelRunner(m.config(), w, rt);
        ExpertCompute experts =
            new ExpertCompute(m.config(), w, rt, ExpertCompute.HostedExperts.ALL)) {
      ModelConfig cfg = m.config();
      LocalExperts local = new LocalExperts(experts);
      int maxLen = Math.min(512, cfg.maxPositions() / 2);
      timePrefill(runner, local, cfg, Math.min(16, maxLen), 3); // warm-up
      timeDecode(runner, local, cfg, 4, 16, 3);
      List<double[]> prefillRows = new ArrayList<>();
      List<Double> prefillMs = new ArrayList<>();
      for (int len = 32; len <= maxLen; len *= 2) {
        double[] t = new double[3];
        for (int r = 0; r < t.length; r++) {
          t[r] = timePrefill(runner, local, cfg, len, r);
        }
        prefillRows.add(new double[] {1, len, (double) len * len});
        prefillMs.add(median(t));
      }
      List<double[]> decodeRows = new ArrayList<>();
      List<Double> decodeMs = new ArrayList<>();
      for (int ctx : new int[] {32, Math.min(256, maxLen)}) {
        for (int b : new int[] {1, 4, 16, 32}) {
          double[] t = new double[3];
          for (int r = 0; r < t.length; r++) {
            t[r] = timeDecode(runner, local, cfg, b, ctx, r);
          }
          decodeRows.add(new double[] {1, b, (double) b * ctx});
          decodeMs.add(median(t));
        }
      }
      double[] p = fitNonNegative(prefillRows, prefillMs);
      double[] d = fitNonNegative(decodeRows, decodeMs);
      long kvBytes = cfg.kvBytesPerToken(4);
      return new CostModel(
          "measured "
              + cfg.name()
              + " (ONNX Runtime CPU, "
              + Runtime.getRuntime().availableProcessors()
              + " cores)",
          p[0],
          Math.max(p[1], 1e-6),
          p[2],
          512,
          2048,
          Math.max(d[0], 1e-3),
          d[1],
          d[2],
          64,
          64L * cfg.maxPositions() / 16,
          16,
          kvBytes,
          1.0e9,
          1.0,
          1000);
    }
  }

  /** One prefill of a {@code len}-token prompt, in ms. */
  private static double timePrefill(
      ModelRunner runner, LocalExperts experts, ModelConfig cfg, int len, int seed) {
    ContiguousKv kv = new ContiguousKv(cfg, len + 1);
    long t0 = System.nanoTime();
    runner.forward(List.of(SequenceStep.text(prompt(cfg, len, seed), kv, true)), experts);
    return (System.nanoTime() - t0) / 1e6;
  }

  /** Median ms of 4 decode steps of {@code b} sequences after {@code ctx}-token prompts. */
  private static double timeDecode(
      ModelRunner runner, LocalExperts experts, ModelConfig cfg, int b, int ctx, int seed) {
    List<ContiguousKv> kvs = new ArrayList<>();
    List<SequenceStep> prefill = new ArrayList<>();
    for (int i = 0; i < b; i++) {
      ContiguousKv kv = new ContiguousKv(cfg, ctx + 8);
      kvs.add(kv);
      prefill.add(SequenceStep.text(prompt(cfg, ctx, seed * 131 + i), kv, true));
    }
    runner.forward(prefill, experts);
    double[] t = new double[4];
    for (int s = 0; s < t.length; s++) {
      List<SequenceStep> step = new ArrayList<>(b);
      for (int i = 0; i < b; i++) {
        step.add(SequenceStep.text(new int[] {40 + s}, kvs.get(i), true));
      }
      long t0 = System.nanoTime();
      runner.forward(step, experts);
      t[s] = (System.nanoTime() - t0) / 1e6;
    }
    return median(t);
  }

  private static int[] prompt(ModelConfig cfg, int len, int seed) {
    Random r = new Random(seed * 7919L + len);
    int[] tokens = new int[len];
    for (int i = 0; i < len; i++) {
      tokens[i] = 32 + r.nextInt(Math.min(256, cfg.vocabSize() - 32));
    }
    return tokens;
  }

  private static double median(double[] v) {
    double[] s = v.clone();
    Arrays.sort(s);
    return s[s.length / 2];
  }

  /**
   * Least squares {@code y ≈ X·β} over three columns; a coefficient that comes out negative (noise)
   * is dropped and the rest refitted.
   */
  static double[] fitNonNegative(List<double[]> x, List<Double> y) {
    boolean[] use = {true, true, true};
    while (true) {
      double[] beta = solve(x, y, use);
      int worst = -1;
      for (int i = 0; i < 3; i++) {
        if (use[i] && beta[i] < 0 && (worst < 0 || beta[i] < beta[worst])) {
          worst = i;
        }
      }
      if (worst < 0) {
        return beta;
      }
      use[worst] = false;
    }
  }

  private static double[] solve(List<double[]> x, List<Double> y, boolean[] use) {
    int[] idx = IntStream.range(0, 3).filter(i -> use[i]).toArray();
    int k = idx.length;
    double[][] a = new double[k][k + 1];
    for (int r = 0; r < x.size(); r++) {
      for (int i = 0; i < k; i++) {
        for (int j = 0; j < k; j++) {
          a[i][j] += x.get(r)[idx[i]] * x.get(r)[idx[j]];
        }
        a[i][k] += x.get(r)[idx[i]] * y.get(r);
      }
    }
    for (int c = 0; c < k; c++) { // Gauss-Jordan with partial pivoting
      int piv = c;
      for (int r = c + 1; r < k; r++) {
        if (Math.abs(a[r][c]) > Math.abs(a[piv][c])) {
          piv = r;
        }
      }
      double[] tmp = a[c];
      a[c] = a[piv];
      a[piv] = tmp;
      if (Math.abs(a[c][c]) < 1e-300) {
        continue;
      }
      for (int r = 0; r < k; r++) {
        if (r != c) {
          double f = a[r][c] / a[c][c];
          for (int j = c; j <= k; j++) {
            a[r][j] -= f * a[c][j];
          }
        }
      }
    }
    double[] beta = new double[3];
    for (int i = 0; i < k; i++) {
      beta[idx[i]] = Math.abs(a[i][i]) < 1e-300 ? 0 : a[i][k] / a[i][i];
    }
    return beta;
  }
}
