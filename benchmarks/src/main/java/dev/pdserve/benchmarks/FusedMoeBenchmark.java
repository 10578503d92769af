package dev.pdserve.benchmarks;

import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.RoutedBatch;
import dev.pdserve.model.memory.ProcessMemory;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.quant.QuantCompute;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.WeightQuantization;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelWeights;
import dev.pdserve.model.weights.WeightSource;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.function.Function;

/**
 * Per-layer routed-expert time of one MoE layer (the first, text experts), side by side in one run:
 *
 * <ul>
 *   <li><b>per-expert</b>: today's engine, {@link ExpertCompute}: one session per expert, one call
 *       per active expert with its rows (padded to two), outputs weighted and summed in double.
 *   <li><b>fused</b>: every expert of the layer in one session around ONNX Runtime's {@code
 *       com.microsoft.MoE} (fp32) or {@code QMoE} (int4 / int8, the same codes, scales and zero
 *       points; MODE:int8 gives the per-expert sessions int8-activation compute, the fused operator
 *       has none) — {@link FusedExperts} — fed {@link FusedRouting#weighted} router values, so the
 *       operator weights and sums the experts itself: one call per layer.
 *   <li><b>fused-expanded</b>: the same session fed one row per (token, expert) pair ({@link
 *       FusedRouting#expanded}); the operator computes each expert once per pair and the caller
 *       weights and sums as the per-expert path does: one call per layer, k× the rows.
 * </ul>
 *
 * For each batch (tokens) it prints the median and mean time of each, how far the fused outputs are
 * from the per-expert ones (max |diff| / max |per-expert|), whether each variant is batch-invariant
 * (rows of the largest batch computed in a smaller prefix of it, bit for bit), and the resident
 * memory each variant's sessions added for the layer's experts. Seeded dummy weights (fp32;
 * quantized ones generated directly in their format). Not a test: run by hand.
 *
 * <pre>
 * mvn -o -q -pl benchmarks -am compile org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath -Dmdep.outputFile=target/cp.txt
 * MALLOC_MMAP_THRESHOLD_=131072 java -Xms3g -Xmx3g -XX:+AlwaysPreTouch -XX:MaxDirectMemorySize=8g \
 *     -cp benchmarks/target/classes:$(cat benchmarks/target/cp.txt) dev.pdserve.benchmarks.FusedMoeBenchmark \
 *     [preset=ernie-4.5-vl-28b-a3b] [modes=fp32,int4,int4:int8,int8,int8:int8] [batches=1,8,32] [iterations=10] [block=64]
 * </pre>
 */
public final class FusedMoeBenchmark {
  static final String PER_EXPERT = "per-expert";
  static final String FUSED = "fused";
  static final String EXPANDED = "fused-expanded";
  private static final int BATCHES_PER_SIZE = 4;
  private static final int WARMUP = 2;
  private static final String MODES_ARE = "modes are fp32, int4 or int8, each optionally :int8";

  private FusedMoeBenchmark() {}

  /** What to measure. */
  record Settings(
      String preset, List<String> modes, int[] batches, int iterations, int blockSize, long seed) {
    static Settings parse(String[] args) {
      String preset = "ernie-4.5-vl-28b-a3b";
      List<String> modes = List.of("fp32", "int4", "int4:int8", "int8", "int8:int8");
      int[] batches = {1, 8, 32};
      int iterations = 10;
      int block = WeightQuantization.DEFAULT_BLOCK_SIZE;
      long seed = 42;
      for (String a : args) {
        int eq = a.indexOf('=');
        if (eq < 0) {
          throw new IllegalArgumentException("arguments are key=value, got '" + a + "'");
        }
        String v = a.substring(eq + 1);
        switch (a.substring(0, eq)) {
          case "preset" -> preset = v;
          case "modes" -> modes = List.of(v.split(","));
          case "batches" ->
              batches = Arrays.stream(v.split(",")).mapToInt(Integer::parseInt).toArray();
          case "iterations" -> iterations = Integer.parseInt(v);
          case "block" -> block = Integer.parseInt(v);
          case "seed" -> seed = Long.parseLong(v);
          default ->
              throw new IllegalArgumentException(
                  "unknown key '"
                      + a.substring(0, eq)
                      + "': preset, modes, batches, iterations, block, seed");
        }
      }
      for (String m : modes) {
        quantization(m, block); // fails early on an unknown mode
      }
      return new Settings(preset, modes, batches, iterations, block, seed);
    }
  }

  /** One way of computing a layer's routed experts: a batch in, {@code [rows, H]} out. */
  private record Variant(String name, Function<RoutedBatch, float[]> run) {}

  public static void main(String[] args) {
    run(Settings.parse(args), System.out);
  }

  static void run(Settings s, PrintStream out) {
    ModelConfig cfg = ModelPresets.get(s.preset());
    int layer = cfg.layerKinds().indexOf(LayerKind.MOE);
    int group = ExpertGroup.TEXT;
    ExpertGroup eg = cfg.expertGroups().get(group);
    OrtRuntime rt = OrtRuntime.shared();
    out.printf(
        Locale.ROOT,
        "fused MoE vs per-expert sessions: preset %s, layer %d (%s experts), hidden %d, expert"
            + " intermediate %d, %d experts, top-%d; ONNX Runtime CPU provider, %d CPUs; %d"
            + " iterations per batch size after %d untimed; load average %s%n",
        cfg.name(),
        layer,
        eg.name(),
        cfg.hidden(),
        eg.intermediate(),
        eg.numExperts(),
        cfg.topK(),
        Runtime.getRuntime().availableProcessors(),
        s.iterations(),
        WARMUP,
        loadAverage());
    for (String mode : s.modes()) {
      runMode(cfg, layer, group, mode, s, rt, out);
    }
    out.printf(Locale.ROOT, "load average at the end %s%n", loadAverage());
  }

  private static void runMode(
      ModelConfig cfg,
      int layer,
      int group,
      String mode,
      Settings s,
      OrtRuntime rt,
      PrintStream out) {
    WeightQuantization q = quantization(mode, s.blockSize());
    WeightSource src =
        q.isQuantized() ? DummyWeights.lowBit(cfg, s.seed()) : new DummyWeights(cfg, s.seed());
    int experts = cfg.expertGroups().get(group).numExperts();
    out.printf(Locale.ROOT, "%nmode %s (%s)%n", mode, q.describe());
    try (ModelWeights w = new ModelWeights(cfg, src, rt, q)) {
      long rss0 = settledRss();
      try (ExpertCompute perExpert =
          new ExpertCompute(cfg, w, rt, (l, g, e) -> l == layer && g == group)) {
        perExpert.loadAll();
        long rss1 = rss();
        try (FusedExperts fused = FusedExperts.create(w, layer, group, rt)) {
          long rss2 = rss();
          out.printf(
              Locale.ROOT,
              "  resident memory added for the %d experts: per-expert sessions %.1f MiB, fused"
                  + " %s session %.1f MiB%n",
              experts,
              (rss1 - rss0) / 1048576.0,
              fused.operator(),
              (rss2 - rss1) / 1048576.0);
          List<Variant> variants =
              List.of(
                  new Variant(PER_EXPERT, b -> perExpertOutput(perExpert, b)),
                  new Variant(
                      FUSED, b -> fused.run(b.hn(), FusedRouting.weighted(b, experts), b.rows())),
                  new Variant(EXPANDED, b -> expandedOutput(fused, b, experts)));
          measure(cfg, layer, variants, s, experts, out);
          out.printf(
              Locale.ROOT,
              "  resident memory after the runs: %.1f MiB above the start of this mode%n",
              (rss() - rss0) / 1048576.0);
        }
      }
    }
  }

  private static void measure(
      ModelConfig cfg,
      int layer,
      List<Variant> variants,
      Settings s,
      int experts,
      PrintStream out) {
    out.printf(
        Locale.ROOT,
        "  %5s %8s %15s %15s %15s %10s %10s%n",
        "batch",
        "experts",
        PER_EXPERT + " ms",
        FUSED + " ms",
        EXPANDED + " ms",
        "fused/per",
        "expand/per");
    out.printf(
        Locale.ROOT,
        "  %5s %8s %15s %15s %15s%n",
        "",
        "active",
        "median (mean)",
        "median (mean)",
        "median (mean)");
    List<String> agreement = new ArrayList<>();
    RoutedBatch largest = null;
    for (int rows : s.batches()) {
      Random rnd = new Random(s.seed() * 31 + rows);
      List<RoutedBatch> batches = new ArrayList<>();
      double active = 0;
      for (int i = 0; i < BATCHES_PER_SIZE; i++) {
        RoutedBatch b = randomBatch(cfg, layer, rows, experts, rnd);
        batches.add(b);
        active += distinctExperts(b) / (double) BATCHES_PER_SIZE;
      }
      if (largest == null || rows > largest.rows()) {
        largest = batches.get(0);
      }
      float[][] first = new float[variants.size()][];
      for (int v = 0; v < variants.size(); v++) {
        for (int i = 0; i < WARMUP; i++) {
          first[v] = variants.get(v).run().apply(batches.get(0));
        }
      }
      StringBuilder agree = new StringBuilder();
      for (int v = 1; v < variants.size(); v++) {
        agree.append(
            String.format(
                Locale.ROOT,
                " %s %.2e",
                variants.get(v).name(),
                relativeDifference(first[v], first[0])));
      }
      agreement.add(String.format(Locale.ROOT, "  agreement batch %3d:%s", rows, agree));
      long[][] t = new long[variants.size()][s.iterations()];
      for (int i = 0; i < s.iterations(); i++) {
        RoutedBatch b = batches.get(i % batches.size());
        for (int j = 0; j < variants.size(); j++) {
          int v = (i + j) % variants.size(); // rotate the order: no variant always runs first
          long t0 = System.nanoTime();
          variants.get(v).run().apply(b);
          t[v][i] = System.nanoTime() - t0;
        }
      }
      double[] med = new double[variants.size()];
      StringBuilder row = new StringBuilder();
      for (int v = 0; v < variants.size(); v++) {
        med[v] = median(t[v]) / 1e6;
        row.append(
            String.format(
                Locale.ROOT,
                " %15s",
                String.format(
                    Locale.ROOT,
                    "%.2f (%.2f)",
                    med[v],
                    Arrays.stream(t[v]).average().orElse(0) / 1e6)));
      }
      out.printf(
          Locale.ROOT,
          "  %5d %8.1f%s %10.2f %10.2f%n",
          rows,
          active,
          row,
          med[1] / med[0],
          med[2] / med[0]);
    }
    agreement.forEach(out::println);
    out.println("  (agreement: max |variant - per-expert| / max |per-expert| on the same batch)");
    invariance(variants, largest, s, out);
  }

  /**
   * Computes the first {@code n} rows of {@code largest} alone for every smaller batch size {@code
   * n}, and says for each variant whether those rows are bit-identical to the same rows computed in
   * the whole batch (with the largest difference where not).
   */
  private static void invariance(
      List<Variant> variants, RoutedBatch largest, Settings s, PrintStream out) {
    int h = largest.hidden();
    List<float[]> whole = new ArrayList<>();
    for (Variant v : variants) {
      whole.add(v.run().apply(largest));
    }
    for (int n : s.batches()) {
      if (n >= largest.rows()) {
        continue;
      }
      RoutedBatch prefix = prefix(largest, n);
      StringBuilder line = new StringBuilder();
      for (int v = 0; v < variants.size(); v++) {
        float[] part = variants.get(v).run().apply(prefix);
        float[] full = Arrays.copyOf(whole.get(v), n * h);
        double maxDiff = 0;
        boolean same = true;
        for (int i = 0; i < part.length; i++) {
          same &= Float.floatToRawIntBits(part[i]) == Float.floatToRawIntBits(full[i]);
          maxDiff = Math.max(maxDiff, Math.abs((double) part[i] - full[i]));
        }
        line.append(
            String.format(
                Locale.ROOT,
                " %s %s",
                variants.get(v).name(),
                same ? "identical" : String.format(Locale.ROOT, "differs(%.2e)", maxDiff)));
      }
      out.printf(
          Locale.ROOT, "  invariance rows 0..%d alone vs in %d:%s%n", n - 1, largest.rows(), line);
    }
  }

  private static float[] perExpertOutput(ExpertCompute compute, RoutedBatch b) {
    double[] acc = new double[b.rows() * b.hidden()];
    compute.accumulate(b, acc);
    return toFloats(acc);
  }

  private static float[] expandedOutput(FusedExperts fused, RoutedBatch b, int experts) {
    FusedRouting.Expanded ex = FusedRouting.expanded(b, experts);
    float[] y = fused.run(ex.x(), ex.router(), ex.rows());
    double[] acc = new double[b.rows() * b.hidden()];
    ex.accumulate(y, acc);
    return toFloats(acc);
  }

  private static float[] toFloats(double[] acc) {
    float[] out = new float[acc.length];
    for (int i = 0; i < acc.length; i++) {
      out[i] = (float) acc[i];
    }
    return out;
  }

  /**
   * The weights of {@code mode}: {@code fp32}, {@code int4} or {@code int8}, optionally followed by
   * {@code :int8} for MatMulNBits' int8-activation compute in the per-expert sessions (QMoE has no
   * such attribute in ONNX Runtime 1.24.2: its fused session computes in fp32 whatever the mode).
   */
  static WeightQuantization quantization(String mode, int block) {
    String[] parts = mode.split(":", -1);
    if (parts.length > 2) {
      throw new IllegalArgumentException(MODES_ARE + ", got '" + mode + "'");
    }
    QuantCompute compute = parts.length == 2 ? QuantCompute.parse(parts[1]) : QuantCompute.FP32;
    return switch (parts[0]) {
      case "fp32" -> new WeightQuantization(QuantMode.NONE, block, compute);
      case "int4" -> new WeightQuantization(QuantMode.INT4, block, compute);
      case "int8" -> new WeightQuantization(QuantMode.INT8, block, compute);
      default -> throw new IllegalArgumentException(MODES_ARE + ", got '" + mode + "'");
    };
  }

  /**
   * {@code rows} tokens routed the way ERNIE's gate routes: softmax over the group's experts, top-k
   * chosen by probability plus a small correction bias, weights the chosen probabilities
   * renormalised (clamped below at 1e-12).
   */
  private static RoutedBatch randomBatch(
      ModelConfig cfg, int layer, int rows, int experts, Random rnd) {
    int h = cfg.hidden();
    int k = cfg.topK();
    float[] hn = new float[rows * h];
    for (int i = 0; i < hn.length; i++) {
      hn[i] = (float) rnd.nextGaussian();
    }
    double[] bias = new double[experts];
    for (int e = 0; e < experts; e++) {
      bias[e] = 0.002 * rnd.nextGaussian();
    }
    long[] ids = new long[rows * k];
    float[] w = new float[rows * k];
    double[] p = new double[experts];
    for (int r = 0; r < rows; r++) {
      double max = Double.NEGATIVE_INFINITY;
      for (int e = 0; e < experts; e++) {
        p[e] = 1.5 * rnd.nextGaussian();
        max = Math.max(max, p[e]);
      }
      double sum = 0;
      for (int e = 0; e < experts; e++) {
        p[e] = Math.exp(p[e] - max);
        sum += p[e];
      }
      boolean[] taken = new boolean[experts];
      double chosen = 0;
      for (int j = 0; j < k; j++) {
        int best = -1;
        for (int e = 0; e < experts; e++) {
          if (!taken[e] && (best < 0 || p[e] + bias[e] * sum > p[best] + bias[best] * sum)) {
            best = e;
          }
        }
        taken[best] = true;
        ids[r * k + j] = best;
        chosen += p[best] / sum;
      }
      for (int j = 0; j < k; j++) {
        w[r * k + j] = (float) ((p[(int) ids[r * k + j]] / sum) / Math.max(chosen, 1e-12));
      }
    }
    return new RoutedBatch(layer, rows, h, k, hn, new int[rows], ids, w);
  }

  private static RoutedBatch prefix(RoutedBatch b, int n) {
    int h = b.hidden();
    int k = b.topK();
    return new RoutedBatch(
        b.layer(),
        n,
        h,
        k,
        Arrays.copyOf(b.hn(), n * h),
        Arrays.copyOf(b.group(), n),
        Arrays.copyOf(b.expertIds(), n * k),
        Arrays.copyOf(b.weights(), n * k));
  }

  private static int distinctExperts(RoutedBatch b) {
    return (int) Arrays.stream(b.expertIds()).distinct().count();
  }

  /** {@code max |a - ref| / max |ref|}. */
  static double relativeDifference(float[] a, float[] ref) {
    double diff = 0;
    double scale = 0;
    for (int i = 0; i < ref.length; i++) {
      diff = Math.max(diff, Math.abs((double) a[i] - ref[i]));
      scale = Math.max(scale, Math.abs((double) ref[i]));
    }
    return scale == 0 ? diff : diff / scale;
  }

  private static double median(long[] v) {
    long[] s = v.clone();
    Arrays.sort(s);
    return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2.0;
  }

  /** {@link #rss} once the buffers a previous mode dropped have been collected and freed. */
  private static long settledRss() {
    for (int i = 0; i < 3; i++) {
      System.gc();
      try {
        Thread.sleep(100);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      }
    }
    return rss();
  }

  private static long rss() {
    return ProcessMemory.residentBytes().orElse(0);
  }

  private static String loadAverage() {
    try {
      String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
      return f[0] + " " + f[1] + " " + f[2];
    } catch (IOException | RuntimeException e) {
      return "unknown";
    }
  }
}
