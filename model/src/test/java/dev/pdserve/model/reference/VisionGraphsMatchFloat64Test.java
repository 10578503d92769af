package dev.pdserve.model.reference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.config.VisionConfig;
import dev.pdserve.model.engine.ContiguousKv;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.ImageSpan;
import dev.pdserve.model.engine.LocalExperts;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.engine.PrefillInputs;
import dev.pdserve.model.engine.PromptPositions;
import dev.pdserve.model.engine.RenderedPrompt;
import dev.pdserve.model.engine.Rope;
import dev.pdserve.model.engine.SequenceStep;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.vision.ImageDecoder;
import dev.pdserve.model.vision.ImagePreprocessor;
import dev.pdserve.model.vision.PatchedImage;
import dev.pdserve.model.vision.RgbImage;
import dev.pdserve.model.vision.VisionEncoder;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelWeights;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * DESIGN.md invariant 2 for the vision path: the ViT and resampler graphs, and the decoder layers
 * at 3-D rotary positions, agree with the independent float64 implementations ({@link
 * Float64Vision}, {@link Float64Ernie#layer3d}) on random images of several sizes.
 */
class VisionGraphsMatchFloat64Test {
  static final double TOLERANCE = 1e-4;

  static ModelConfig cfg;
  static VisionConfig vision;
  static DummyWeights source;
  static ModelWeights weights;
  static VisionEncoder encoder;
  static ModelRunner runner;
  static ExpertCompute experts;
  static LocalExperts local;
  static Float64Vision f64v;
  static Float64Ernie f64;
  static ImagePreprocessor preprocessor;

  @BeforeAll
  static void setUp() {
    cfg = ModelPresets.get("tiny");
    vision = cfg.vision().orElseThrow();
    source = new DummyWeights(cfg, 11);
    OrtRuntime rt = OrtRuntime.shared();
    weights = new ModelWeights(cfg, source, rt);
    encoder = new VisionEncoder(cfg, weights, rt, VisionEncoder.DEFAULT_ATTENTION_CHUNK);
    runner = new ModelRunner(cfg, weights, rt);
    experts = new ExpertCompute(cfg, weights, rt, ExpertCompute.HostedExperts.ALL);
    local = new LocalExperts(experts);
    f64v = new Float64Vision(cfg, source);
    f64 = new Float64Ernie(cfg, source);
    preprocessor = new ImagePreprocessor(vision, new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS));
  }

  @AfterAll
  static void tearDown() {
    encoder.close();
    experts.close();
    runner.close();
    weights.close();
  }

  static RgbImage randomImage(Random r, int width, int height) {
    byte[] rgb = new byte[width * height * 3];
    r.nextBytes(rgb);
    return new RgbImage(width, height, rgb);
  }

  static double[][] rows(float[] flat, int width) {
    double[][] out = new double[flat.length / width][width];
    for (int i = 0; i < out.length; i++) {
      for (int d = 0; d < width; d++) {
        out[i][d] = flat[i * width + d];
      }
    }
    return out;
  }

  /** Max over rows of ‖a_row − b_row‖∞ / ‖b_row‖∞. */
  static double relativeError(float[] a, double[][] b) {
    int w = b[0].length;
    assertEquals(b.length * w, a.length, "row count differs from float64");
    double worst = 0;
    for (int i = 0; i < b.length; i++) {
      double diff = 0;
      double norm = 1e-12;
      for (int d = 0; d < w; d++) {
        diff = Math.max(diff, Math.abs(a[i * w + d] - b[i][d]));
        norm = Math.max(norm, Math.abs(b[i][d]));
      }
      worst = Math.max(worst, diff / norm);
    }
    return worst;
  }

  @ParameterizedTest(name = "{0}x{1} pixels")
  @CsvSource({"56,56", "112,56", "84,140", "197,131", "61,290"})
  void towerAndResamplerMatchFloat64(int width, int height) {
    PatchedImage img =
        preprocessor.preprocess(randomImage(new Random(width * 31L + height), width, height));
    double[][] patches = rows(img.patches(), img.patchValues());
    double[][] refFeatures = f64v.features(patches, f64v.patchPositions(img.gridH(), img.gridW()));
    double featureErr = relativeError(encoder.features(img), refFeatures);
    assertTrue(
        featureErr < TOLERANCE,
        width + "x" + height + ": ViT features differ from float64 by " + featureErr);
    float[] mine = encoder.encode(img);
    assertEquals(img.tokens() * cfg.hidden(), mine.length, "one LM row per merged patch");
    double rowErr = relativeError(mine, f64v.resample(refFeatures));
    assertTrue(
        rowErr < TOLERANCE,
        width + "x" + height + ": resampler rows differ from float64 by " + rowErr);
  }

  /** A prompt of text, one 3 × 2 image, more text: its rendered form without going through text. */
  static RenderedPrompt promptWithImage(Random r) {
    PatchedImage img = preprocessor.preprocess(randomImage(r, 84, 56)); // 6 x 4 patches, 3 x 2 rows
    int before = 5;
    int after = 4;
    int n = before + img.tokens() + after;
    int[] ids = new int[n];
    for (int i = 0; i < n; i++) {
      ids[i] = 32 + r.nextInt(256);
    }
    ids[before - 1] = vision.tokens().start();
    for (int i = 0; i < img.tokens(); i++) {
      ids[before + i] = vision.tokens().placeholder();
    }
    ids[before + img.tokens()] = vision.tokens().end();
    return new RenderedPrompt(ids, List.of(new ImageSpan(before, img)));
  }

  static int[][] positions3d(PromptPositions p, int from, int to) {
    int[][] out = new int[to - from][];
    for (int i = from; i < to; i++) {
      out[i - from] = new int[] {p.get(i, Rope.T), p.get(i, Rope.H), p.get(i, Rope.W)};
    }
    return out;
  }

  @Test
  void decoderLayersAtThreeDimensionalPositionsMatchFloat64() {
    Random r = new Random(17);
    RenderedPrompt prompt = promptWithImage(r);
    PromptPositions pos = prompt.positions();
    int n = prompt.ids().length;
    double[][] x = new double[n][cfg.hidden()];
    for (double[] row : x) {
      for (int d = 0; d < row.length; d++) {
        row[d] = (float) (0.5 * r.nextGaussian()); // representable in fp32 for both sides
      }
    }
    boolean[] flags = new boolean[n];
    for (int i = 0; i < n; i++) {
      flags[i] = vision.tokens().isVisionToken(prompt.ids()[i]);
    }
    for (int layer = 0; layer < cfg.numLayers(); layer++) {
      KvCache64 cache = new KvCache64(cfg);
      LayerTrace ref = f64.layer3d(layer, x, positions3d(pos, 0, n), flags, cache);
      GraphsMatchFloat64Test.assertClearRouting(ref, "layer " + layer);
      ContiguousKv kv = new ContiguousKv(cfg, n);
      float[] out =
          runner.runLayer(
              layer,
              List.of(new SequenceStep(new int[n], flags, null, pos.slice(0, n), kv, false)),
              GraphsMatchFloat64Test.flat(x),
              local);
      double err = GraphsMatchFloat64Test.relativeError(out, ref.out());
      assertTrue(err < TOLERANCE, "layer " + layer + " at 3-D positions differs by " + err);
    }
  }

  @Test
  void prefillWithAnImageAndADecodeStepMatchFloat64() {
    Random r = new Random(23);
    RenderedPrompt prompt = promptWithImage(r);
    int[] ids = prompt.ids();
    int n = ids.length;
    PrefillInputs in = PrefillInputs.of(prompt, cfg, runner, encoder);

    ImageSpan span = prompt.images().get(0);
    double[][] imageRows =
        f64v.encode(
            rows(span.image().patches(), span.image().patchValues()),
            span.image().gridH(),
            span.image().gridW());
    double[][] x = new double[n][];
    for (int i = 0; i < n; i++) {
      boolean image = i >= span.start() && i < span.end();
      x[i] = image ? imageRows[i - span.start()] : f64.embed(ids[i]);
    }
    KvCache64 cache = new KvCache64(cfg);
    double[][] ref =
        f64.forwardEmbeddings3d(x, positions3d(in.positions(), 0, n), in.vision(), cache);
    ContiguousKv kv = new ContiguousKv(cfg, n + 1);
    float[] logits = runner.forward(List.of(in.step(kv, true)), local)[0];
    double err = GraphsMatchFloat64Test.relativeError(logits, new double[][] {ref[n - 1]});
    assertTrue(err < TOLERANCE, "prefill logits with an image differ from float64 by " + err);

    int next = GraphsMatchFloat64Test.argmax(logits);
    int p = n + in.positions().delta();
    double[][] refNext =
        f64.forwardEmbeddings3d(
            new double[][] {f64.embed(next)}, new int[][] {{p, p, p}}, new boolean[1], cache);
    float[] mineNext = runner.forward(List.of(in.decode(next, kv)), local)[0];
    double decodeErr = GraphsMatchFloat64Test.relativeError(mineNext, refNext);
    assertTrue(decodeErr < TOLERANCE, "decode logits after an image differ by " + decodeErr);
  }
}
