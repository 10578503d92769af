package dev.pdserve.benchmarks;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.config.VisionConfig;
import dev.pdserve.model.memory.ProcessMemory;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.vision.ImageDecoder;
import dev.pdserve.model.vision.ImagePreprocessor;
import dev.pdserve.model.vision.PatchedImage;
import dev.pdserve.model.vision.RgbImage;
import dev.pdserve.model.vision.VisionEncoder;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelWeights;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * Time and memory of {@link VisionEncoder#encode} (the ViT and the resampler) for one image at a
 * few sizes, the attention computed whole and in query chunks ({@code
 * pdserve.vision.attention-chunk}) side by side: the {@code small} preset's whole tower, and one
 * ViT block of ERNIE-4.5-VL-28B-A3B's tower at full width (1280, 16 heads, MLP 5120) with its
 * full-size resampler, dummy weights. The 32-block tower of the released model is <b>computed</b>
 * from the measured 1-block tower (32 × its time; the 1-block tower also holds the patch embedding
 * and the final LayerNorm, a few % of a block's FLOPs, so the figure is slightly high), plus the
 * measured resampler. A row's peak is the growth of the process's resident set (VmHWM) over 3
 * encodes by an encoder of its own (sessions made, then VmHWM reset), i.e. the activations; the two
 * rows of a size are timed in alternating runs. Run with {@code -Xms} = {@code -Xmx} and {@code
 * -XX:+AlwaysPreTouch} so the Java heap's growth is not counted. The largest attention block's
 * {@code [heads, rows, patches]} fp32 score tensor is printed beside it, and whether the chunked
 * features are bit-identical to the whole ones. Not a test: run by hand.
 *
 * <pre>
 * mvn -o -q -pl benchmarks -am compile org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath -Dmdep.outputFile=target/cp.txt
 * java -Xms4g -Xmx4g -XX:+AlwaysPreTouch -cp benchmarks/target/classes:$(cat benchmarks/target/cp.txt) \
 *     dev.pdserve.benchmarks.VisionEncoderBenchmark [sizes=224,448,896] [repeats=3] [chunk=256] \
 *     [28B sizes measured chunked only, one encode each=]
 * </pre>
 */
public final class VisionEncoderBenchmark {
  private static final String FULL_SIZE = "ernie-4.5-vl-28b-a3b";
  private static final int WHOLE = Integer.MAX_VALUE;
  private static final int PEAK_RUNS = 3;

  private VisionEncoderBenchmark() {}

  /** Median milliseconds of the tower alone and of tower + resampler; the last run's features. */
  private record Timing(double towerMs, double encodeMs, float[] features) {
    double resamplerMs() {
      return Math.max(0, encodeMs - towerMs);
    }
  }

  /** One encoder's figures for one image: times (and features) and activation peak. */
  private record Measured(Timing timing, long peakMiB) {}

  public static void main(String[] args) {
    int[] sizes = args.length > 0 ? ints(args[0]) : new int[] {224, 448, 896};
    int repeats = args.length > 1 ? Integer.parseInt(args[1]) : 3;
    int chunk = args.length > 2 ? Integer.parseInt(args[2]) : VisionEncoder.DEFAULT_ATTENTION_CHUNK;
    int[] chunkedOnly = args.length > 3 ? ints(args[3]) : new int[0];
    OrtRuntime rt = OrtRuntime.shared();
    System.out.printf(
        Locale.ROOT,
        "vision encoder: ONNX Runtime CPU provider, fp32, %d CPUs, median of %d runs after one"
            + " untimed; attention whole or in chunks of %d query patches; peak = growth of the"
            + " resident set (VmHWM) over 3 encodes; whole and chunked timed in alternating runs%s%n",
        Runtime.getRuntime().availableProcessors(),
        repeats,
        chunk,
        ProcessMemory.resetPeak() ? "" : " (cannot reset VmHWM here: peaks not comparable)");

    ModelConfig small = ModelPresets.get("small");
    VisionConfig sv = small.vision().orElseThrow();
    System.out.printf(
        Locale.ROOT,
        "%npreset small: ViT %d blocks, width %d, %d heads, MLP %d; measured%n",
        sv.depth(),
        sv.width(),
        sv.heads(),
        sv.mlpWidth());
    header(false);
    try (ModelWeights w = new ModelWeights(small, new DummyWeights(small, 42), rt)) {
      for (int s : sizes) {
        sideBySide(small, w, image(sv, s), s, repeats, chunk, 1);
      }
    }

    ModelConfig full = ModelPresets.get(FULL_SIZE);
    VisionConfig fv = full.vision().orElseThrow();
    ModelConfig oneBlock = full.withVision(Optional.of(withDepth(fv, 1)));
    System.out.printf(
        Locale.ROOT,
        "%n%s: ViT block of width %d, %d heads, MLP %d; one block measured, the %d-block tower"
            + " computed (32 x the 1-block tower) + the measured resampler%n",
        FULL_SIZE,
        fv.width(),
        fv.heads(),
        fv.mlpWidth(),
        fv.depth());
    header(true);
    try (ModelWeights w = new ModelWeights(oneBlock, new DummyWeights(oneBlock, 42), rt)) {
      for (int s : sizes) {
        sideBySide(oneBlock, w, image(fv, s), s, repeats, chunk, fv.depth());
      }
      for (int s : chunkedOnly) {
        PatchedImage img = image(fv, s);
        // one timed run, no untimed one: minutes at the released pixel bound on two cores
        row(oneBlock, img, s, chunk, measureOnce(oneBlock, w, img, chunk), "", fv.depth());
      }
    }
  }

  private static int[] ints(String csv) {
    return csv.isBlank()
        ? new int[0]
        : Arrays.stream(csv.split(",")).mapToInt(Integer::parseInt).toArray();
  }

  private static void header(boolean computed) {
    System.out.printf(
        Locale.ROOT,
        "%9s %8s %7s %-17s %10s %13s %10s %15s %15s %13s %10s%n",
        "image",
        "patches",
        "tokens",
        "attention",
        computed ? "1-block ms" : "tower ms",
        "resampler ms",
        "encode ms",
        computed ? "image ms (calc)" : "-",
        "scores MiB/blk",
        "peak +MiB",
        "same bits");
  }

  /**
   * The image encoded whole and in chunks, one row each, the chunked one compared bit for bit. Each
   * encoder's peak is taken alone (its sessions made, VmHWM reset, one encode); the times come from
   * runs that alternate between the two encoders, so load from elsewhere falls on both alike.
   */
  private static void sideBySide(
      ModelConfig cfg, ModelWeights w, PatchedImage img, int s, int repeats, int chunk, int depth) {
    long wholePeak = peakMiB(cfg, w, img, WHOLE);
    long chunkedPeak = peakMiB(cfg, w, img, chunk);
    try (VisionEncoder whole = new VisionEncoder(cfg, w, OrtRuntime.shared(), WHOLE);
        VisionEncoder chunked = new VisionEncoder(cfg, w, OrtRuntime.shared(), chunk)) {
      Timing[] t = time(List.of(whole, chunked), img, repeats);
      row(cfg, img, s, WHOLE, new Measured(t[0], wholePeak), "", depth);
      row(
          cfg,
          img,
          s,
          chunk,
          new Measured(t[1], chunkedPeak),
          sameBits(t[0].features(), t[1].features()),
          depth);
    }
  }

  /**
   * Growth of the resident set over {@link #PEAK_RUNS} encodes by a fresh encoder (its sessions
   * already made): later runs may need more than the first (ONNX Runtime's memory pattern did).
   */
  private static long peakMiB(ModelConfig cfg, ModelWeights w, PatchedImage img, int chunk) {
    try (VisionEncoder enc = new VisionEncoder(cfg, w, OrtRuntime.shared(), chunk)) {
      System.gc();
      ProcessMemory.resetPeak();
      long before = ProcessMemory.residentBytes().orElse(0);
      for (int i = 0; i < PEAK_RUNS; i++) {
        enc.encode(img);
      }
      return (ProcessMemory.peakResidentBytes().orElse(before) - before) >> 20;
    }
  }

  /** One encoder alone, one timed run (no untimed one), its peak over that run. */
  private static Measured measureOnce(
      ModelConfig cfg, ModelWeights w, PatchedImage img, int chunk) {
    try (VisionEncoder enc = new VisionEncoder(cfg, w, OrtRuntime.shared(), chunk)) {
      System.gc();
      ProcessMemory.resetPeak();
      long before = ProcessMemory.residentBytes().orElse(0);
      Timing t = time(List.of(enc), img, 0)[0];
      return new Measured(t, (ProcessMemory.peakResidentBytes().orElse(before) - before) >> 20);
    }
  }

  private static void row(
      ModelConfig cfg, PatchedImage img, int s, int chunk, Measured m, String same, int depth) {
    VisionConfig v = cfg.vision().orElseThrow();
    int n = img.patchCount();
    String mode = chunk == WHOLE ? "whole" : "chunks of " + chunk;
    double image = depth * m.timing().towerMs() + m.timing().resamplerMs();
    System.out.printf(
        Locale.ROOT,
        "%4dx%-4d %8d %7d %-17s %10.1f %13.1f %10.1f %15s %15.1f %13d %10s%n",
        s,
        s,
        n,
        img.tokens(),
        mode,
        m.timing().towerMs(),
        m.timing().resamplerMs(),
        m.timing().encodeMs(),
        depth > 1 ? String.format(Locale.ROOT, "%.1f", image) : "-",
        scoreBytes(v, n, chunk) / 1048576.0,
        m.peakMiB(),
        same);
  }

  /** "yes", or the largest absolute difference. */
  private static String sameBits(float[] a, float[] b) {
    double worst = 0;
    boolean same = a.length == b.length;
    for (int i = 0; same && i < a.length; i++) {
      if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) {
        worst = Math.max(worst, Math.abs((double) a[i] - b[i]));
      }
    }
    return !same ? "sizes" : worst == 0 ? "yes" : String.format(Locale.ROOT, "%.2e", worst);
  }

  /** An {@code s × s} gradient, preprocessed as a request's image is (no resize at these sizes). */
  private static PatchedImage image(VisionConfig v, int s) {
    byte[] rgb = new byte[s * s * 3];
    for (int y = 0; y < s; y++) {
      for (int x = 0; x < s; x++) {
        int o = (y * s + x) * 3;
        rgb[o] = (byte) (x * 255 / s);
        rgb[o + 1] = (byte) (y * 255 / s);
        rgb[o + 2] = (byte) ((x + y) * 127 / s);
      }
    }
    return new ImagePreprocessor(v, new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS))
        .preprocess(new RgbImage(s, s, rgb));
  }

  /**
   * Per encoder, the median of {@code repeats} timed runs after one untimed, the encoders taking
   * turns run by run; with {@code repeats} 0, one timed run alone.
   */
  private static Timing[] time(List<VisionEncoder> encoders, PatchedImage img, int repeats) {
    int e = encoders.size();
    if (repeats > 0) {
      encoders.forEach(enc -> enc.encode(img)); // untimed: first-run allocations, kernel choices
    }
    int runs = Math.max(1, repeats);
    long[][] tower = new long[e][runs];
    long[][] encode = new long[e][runs];
    float[][] features = new float[e][];
    for (int i = 0; i < runs; i++) {
      for (int k = 0; k < e; k++) {
        VisionEncoder enc = encoders.get(k);
        long t0 = System.nanoTime();
        features[k] = enc.features(img);
        long t1 = System.nanoTime();
        enc.encode(img);
        long t2 = System.nanoTime();
        tower[k][i] = t1 - t0;
        encode[k][i] = t2 - t1;
      }
    }
    Timing[] out = new Timing[e];
    for (int k = 0; k < e; k++) {
      out[k] = new Timing(median(tower[k]) / 1e6, median(encode[k]) / 1e6, features[k]);
    }
    return out;
  }

  private static double median(long[] v) {
    long[] s = v.clone();
    Arrays.sort(s);
    return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2.0;
  }

  /**
   * The largest attention block's scores: {@code heads × rows × patches} fp32 values, rows the
   * whole image up to {@code chunk + 1} patches, else a chunk (or the last block, up to one row
   * more).
   */
  static long scoreBytes(VisionConfig v, long n, int chunk) {
    long rows = n <= chunk + 1L ? n : Math.max(chunk, n - (n - 2) / chunk * chunk);
    return (long) v.heads() * rows * n * Float.BYTES;
  }

  private static VisionConfig withDepth(VisionConfig v, int depth) {
    return new VisionConfig(
        depth,
        v.width(),
        v.heads(),
        v.mlpWidth(),
        v.patchSize(),
        v.spatialMerge(),
        v.temporalMerge(),
        v.inChannels(),
        v.layerNormEps(),
        v.ropeTheta(),
        v.temporalMlp(),
        v.minPixels(),
        v.maxPixels(),
        v.imageMean(),
        v.imageStd(),
        v.tokens());
  }
}
