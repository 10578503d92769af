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
import java.util.Locale;
import java.util.Optional;

/**
 * Time of {@link VisionEncoder#encode} (the ViT and the resampler) for one image at a few sizes:
 * the {@code small} preset's whole tower, and one ViT block of ERNIE-4.5-VL-28B-A3B's tower at full
 * width (1280, 16 heads, MLP 5120) with its full-size resampler, dummy weights. The 32-block tower
 * of the released model is <b>computed</b> from the measured 1-block tower (32 × its time; the
 * 1-block tower also holds the patch embedding and the final LayerNorm, a few % of a block's FLOPs,
 * so the figure is slightly high), plus the measured resampler. The attention of every block is
 * full: one {@code [heads, patches, patches]} fp32 score tensor, whose bytes are printed, as is the
 * process's peak resident memory so far. Not a test: run by hand.
 *
 * <pre>
 * mvn -o -q -pl benchmarks -am compile org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath -Dmdep.outputFile=target/cp.txt
 * java -Xmx4g -cp benchmarks/target/classes:$(cat benchmarks/target/cp.txt) \
 *     dev.pdserve.benchmarks.VisionEncoderBenchmark [sizes=224,448,896] [repeats=3]
 * </pre>
 */
public final class VisionEncoderBenchmark {
  private static final String FULL_SIZE = "ernie-4.5-vl-28b-a3b";

  private VisionEncoderBenchmark() {}

  /** Median milliseconds of the tower alone and of tower + resampler. */
  private record Timing(double towerMs, double encodeMs) {
    double resamplerMs() {
      return Math.max(0, encodeMs - towerMs);
    }
  }

  public static void main(String[] args) {
    int[] sizes =
        args.length > 0
            ? Arrays.stream(args[0].split(",")).mapToInt(Integer::parseInt).toArray()
            : new int[] {224, 448, 896};
    int repeats = args.length > 1 ? Integer.parseInt(args[1]) : 3;
    OrtRuntime rt = OrtRuntime.shared();
    System.out.printf(
        Locale.ROOT,
        "vision encoder: ONNX Runtime CPU provider, fp32, %d CPUs, median of %d runs after one"
            + " untimed%n",
        Runtime.getRuntime().availableProcessors(),
        repeats);

    ModelConfig small = ModelPresets.get("small");
    VisionConfig sv = small.vision().orElseThrow();
    System.out.printf(
        Locale.ROOT,
        "%npreset small: ViT %d blocks, width %d, %d heads, MLP %d; measured%n",
        sv.depth(),
        sv.width(),
        sv.heads(),
        sv.mlpWidth());
    System.out.printf(
        Locale.ROOT,
        "%7s %8s %7s %10s %13s %10s %11s %13s%n",
        "image",
        "patches",
        "tokens",
        "tower ms",
        "resampler ms",
        "encode ms",
        "scores MiB",
        "peak RSS MiB");
    try (ModelWeights w = new ModelWeights(small, new DummyWeights(small, 42), rt);
        VisionEncoder enc = new VisionEncoder(small, w, rt)) {
      for (int s : sizes) {
        PatchedImage img = image(sv, s);
        Timing t = time(enc, img, repeats);
        System.out.printf(
            Locale.ROOT,
            "%4dx%-3d %7d %7d %10.1f %13.1f %10.1f %11.1f %13d%n",
            s,
            s,
            img.patchCount(),
            img.tokens(),
            t.towerMs(),
            t.resamplerMs(),
            t.encodeMs(),
            scoreBytes(sv, img) / 1048576.0,
            peakRssMiB());
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
    System.out.printf(
        Locale.ROOT,
        "%7s %8s %7s %12s %13s %16s %15s %16s %13s%n",
        "image",
        "patches",
        "tokens",
        "1-block ms",
        "resampler ms",
        "tower ms (calc)",
        "image ms (calc)",
        "scores MiB/blk",
        "peak RSS MiB");
    try (ModelWeights w = new ModelWeights(oneBlock, new DummyWeights(oneBlock, 42), rt);
        VisionEncoder enc = new VisionEncoder(oneBlock, w, rt)) {
      for (int s : sizes) {
        PatchedImage img = image(fv, s);
        Timing t = time(enc, img, repeats);
        double tower = fv.depth() * t.towerMs();
        System.out.printf(
            Locale.ROOT,
            "%4dx%-3d %7d %7d %12.1f %13.1f %16.1f %15.1f %16.1f %13d%n",
            s,
            s,
            img.patchCount(),
            img.tokens(),
            t.towerMs(),
            t.resamplerMs(),
            tower,
            tower + t.resamplerMs(),
            scoreBytes(fv, img) / 1048576.0,
            peakRssMiB());
      }
    }
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

  private static Timing time(VisionEncoder enc, PatchedImage img, int repeats) {
    enc.encode(img); // untimed: first-run allocations and kernel choices
    long[] tower = new long[repeats];
    long[] encode = new long[repeats];
    for (int i = 0; i < repeats; i++) {
      long t0 = System.nanoTime();
      enc.features(img);
      long t1 = System.nanoTime();
      enc.encode(img);
      long t2 = System.nanoTime();
      tower[i] = t1 - t0;
      encode[i] = t2 - t1;
    }
    return new Timing(median(tower) / 1e6, median(encode) / 1e6);
  }

  private static double median(long[] v) {
    long[] s = v.clone();
    Arrays.sort(s);
    return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2.0;
  }

  /** One block's attention scores: {@code heads × patches²} fp32 values. */
  static long scoreBytes(VisionConfig v, PatchedImage img) {
    long n = img.patchCount();
    return (long) v.heads() * n * n * Float.BYTES;
  }

  /** The process's peak resident set (VmHWM) in MiB, or -1 where /proc is not there. */
  private static long peakRssMiB() {
    return ProcessMemory.peakResidentBytes().orElse(-1024 * 1024) / (1024 * 1024);
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
