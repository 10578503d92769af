package dev.pdserve.model.graph;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.engine.ContiguousKv;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.LocalExperts;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.engine.Numerics;
import dev.pdserve.model.engine.SequenceStep;
import dev.pdserve.model.onnx.DType;
import dev.pdserve.model.onnx.GraphBuilder;
import dev.pdserve.model.onnx.OrtGraph;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.HalfFloats;
import dev.pdserve.model.weights.ModelWeights;
import dev.pdserve.onnx.AttributeProto;
import dev.pdserve.onnx.NodeProto;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The KV dtype's rounding inside the layer graph: ONNX Runtime's CPU Cast to fp16 and bf16 rounds
 * exactly as {@link HalfFloats} does, a half-mode layer's new keys and values are fp32-mode ones
 * rounded to the dtype (so a 2-byte cache stores them losslessly), and fp32 mode has no Cast.
 */
class KvRoundingTest {
  static ModelConfig cfg;
  static OrtRuntime rt;
  static ModelWeights weights;
  static ExpertCompute experts;

  @BeforeAll
  static void setUp() {
    cfg = ModelPresets.get("tiny");
    rt = OrtRuntime.shared();
    weights = new ModelWeights(cfg, new DummyWeights(cfg, 42), rt);
    experts = new ExpertCompute(cfg, weights, rt, ExpertCompute.HostedExperts.ALL);
  }

  @AfterAll
  static void tearDown() {
    experts.close();
    weights.close();
  }

  /** Values that probe rounding: every half pattern, ties, near-ties, subnormals, random floats. */
  static float[] probes(KvDtype dtype) {
    List<Float> v = new ArrayList<>();
    for (int bits = 0; bits < 0x10000; bits++) {
      float f = dtype.fromBits(bits);
      if (Float.isNaN(f)) {
        continue;
      }
      v.add(f);
      int raw = Float.floatToRawIntBits(f);
      int ulpHalf = dtype == KvDtype.BF16 ? 1 << 15 : 1 << 12; // half a half-ulp, for normals
      v.add(Float.intBitsToFloat(raw + ulpHalf)); // a tie (normals) or just inside
      v.add(Float.intBitsToFloat(raw + ulpHalf + 1)); // just above the tie
      v.add(Float.intBitsToFloat(raw + ulpHalf - 1)); // just below the tie
    }
    Random r = new Random(5);
    for (int i = 0; i < 20_000; i++) {
      v.add((float) (r.nextGaussian() * Math.pow(10, r.nextInt(12) - 8)));
    }
    v.removeIf(f -> Float.isNaN(f)); // NaN payloads are not what this test is about
    float[] out = new float[v.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = v.get(i);
    }
    return out;
  }

  @ParameterizedTest
  @EnumSource(
      value = KvDtype.class,
      names = {"FP16", "BF16"})
  void onnxRuntimeCastRoundsLikeHalfFloats(KvDtype dtype) {
    GraphBuilder b = new GraphBuilder("cast-" + dtype.configName());
    String x = b.input("x", DType.FLOAT, "n");
    DType half = dtype == KvDtype.FP16 ? DType.FLOAT16 : DType.BFLOAT16;
    b.output(b.cast(b.cast(x, half), DType.FLOAT), "y", DType.FLOAT, "n");
    float[] in = probes(dtype);
    float[] out;
    try (OrtGraph g = OrtGraph.create("cast", b.build(), Set.of(), Map.of(), rt);
        OnnxTensor t = rt.floatTensor(in, in.length);
        OrtSession.Result r = g.run(Map.of("x", t))) {
      out = OrtGraph.floats(r, 0);
    }
    int wrong = 0;
    StringBuilder first = new StringBuilder();
    for (int i = 0; i < in.length; i++) {
      float want = dtype.round(in[i]);
      if (Float.floatToRawIntBits(want) != Float.floatToRawIntBits(out[i])) {
        if (wrong++ < 5) {
          first.append(String.format(" %a -> ORT %a, HalfFloats %a;", in[i], out[i], want));
        }
      }
    }
    assertEquals(0, wrong, dtype + ": ORT's Cast and HalfFloats differ on " + wrong + ":" + first);
  }

  /** K and V of layer 0 for {@code tokens} rows of input, from a runner of {@code dtype}. */
  private static float[][] layerZeroKv(KvDtype dtype, float[] rows, int tokens) {
    try (ModelRunner runner = new ModelRunner(cfg, weights, rt, Numerics.kv(dtype))) {
      ContiguousKv kv = new ContiguousKv(cfg, tokens);
      runner.runLayer(
          0,
          List.of(SequenceStep.text(new int[tokens], kv, false)),
          rows,
          new LocalExperts(experts));
      kv.advance(tokens);
      int n = cfg.numKvHeads() * tokens * cfg.headDim();
      float[] k = new float[n];
      float[] v = new float[n];
      kv.read(0, k, v, 0, tokens);
      return new float[][] {k, v};
    }
  }

  @ParameterizedTest
  @EnumSource(
      value = KvDtype.class,
      names = {"FP16", "BF16"})
  void halfModeKeysAndValuesAreTheFp32OnesRoundedToTheDtype(KvDtype dtype) {
    int tokens = 9;
    Random r = new Random(3);
    float[] rows = new float[tokens * cfg.hidden()];
    for (int i = 0; i < rows.length; i++) {
      rows[i] = (float) r.nextGaussian();
    }
    float[][] full = layerZeroKv(KvDtype.FP32, rows, tokens);
    float[][] half = layerZeroKv(dtype, rows, tokens);
    int notRepresentable = 0;
    for (int part = 0; part < 2; part++) {
      String name = part == 0 ? "K" : "V";
      for (int i = 0; i < full[part].length; i++) {
        float f = full[part][i];
        float h = half[part][i];
        if (Float.floatToRawIntBits(h) != Float.floatToRawIntBits(dtype.round(f))) {
          fail(
              String.format(
                  "%s %s[%d]: fp32 mode %a, %s mode %a, want %a",
                  dtype, name, i, f, dtype.configName(), h, dtype.round(f)));
        }
        notRepresentable += dtype.round(f) != f ? 1 : 0;
      }
    }
    assertTrue(
        notRepresentable > full[0].length,
        "fp32 mode's K and V should mostly not be representable in "
            + dtype
            + " (then the test proves nothing); only "
            + notRepresentable
            + " are not");
  }

  @Test
  void fp32LayerGraphHasNoCastAndHalfGraphsCastKeysAndValues() {
    for (int layer = 0; layer < cfg.numLayers(); layer++) {
      assertEquals(0, halfCasts(LayerGraph.build(cfg, layer, KvDtype.FP32)), "fp32 layer " + layer);
      assertEquals(2, halfCasts(LayerGraph.build(cfg, layer, KvDtype.FP16)), "fp16 layer " + layer);
      assertEquals(2, halfCasts(LayerGraph.build(cfg, layer, KvDtype.BF16)), "bf16 layer " + layer);
    }
    assertNotEquals(
        LayerGraph.build(cfg, 0, KvDtype.FP16).build(),
        LayerGraph.build(cfg, 0, KvDtype.BF16).build());
  }

  /** Casts to a 16-bit float type in the graph. */
  private static long halfCasts(GraphBuilder b) {
    return b.build().getGraph().getNodeList().stream()
        .filter(n -> n.getOpType().equals("Cast"))
        .filter(
            n -> {
              long to = to(n);
              return to == DType.FLOAT16.code() || to == DType.BFLOAT16.code();
            })
        .count();
  }

  private static long to(NodeProto n) {
    for (AttributeProto a : n.getAttributeList()) {
      if (a.getName().equals("to")) {
        return a.getI();
      }
    }
    return -1;
  }
}
