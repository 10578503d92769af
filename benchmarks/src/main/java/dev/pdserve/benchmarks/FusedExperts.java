package dev.pdserve.benchmarks;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.onnx.Attr;
import dev.pdserve.model.onnx.DType;
import dev.pdserve.model.onnx.GraphBuilder;
import dev.pdserve.model.onnx.OrtGraph;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.QuantizedMatrix;
import dev.pdserve.model.quant.WeightComponent;
import dev.pdserve.model.weights.ModelWeights;
import dev.pdserve.model.weights.WeightNames;
import dev.pdserve.onnx.AttributeProto;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Every routed expert of one MoE layer's expert group in one ONNX Runtime session around ONNX
 * Runtime's fused operator: {@code com.microsoft.MoE} for fp32 weights, {@code com.microsoft.QMoE}
 * for 4- or 8-bit ones (block-wise, with the same codes, scales and zero points as the per-expert
 * MatMulNBits sessions). The expert MLP is the operator's SwiGLU with {@code swiglu_fusion} 1: FC1
 * {@code [E, 2I, H]} holds gate row i at row 2i and up row i at row 2i+1, FC2 {@code [E, H, I]} is
 * down; {@code activation_alpha} 1, {@code activation_beta} 0 and no {@code swiglu_limit} make it
 * {@code silu(gate) · up}.
 *
 * <p>The operator chooses its own experts: top-k of {@code router} per row, weights a softmax over
 * those k values (QMoE) or over the row (MoE). {@link FusedRouting} writes {@code router} so that
 * this picks exactly the engine's experts with the engine's weights. Inputs {@code x [n, H]},
 * {@code router [n, E]}, output {@code y [n, H]}. Measured against the per-expert sessions by
 * {@link FusedMoeBenchmark}; not used by the engine.
 */
final class FusedExperts implements AutoCloseable {
  static final String INPUT = "x";
  static final String ROUTER = "router";
  static final String OUTPUT = "y";

  private final OrtGraph graph;
  private final List<OnnxTensor> bound;
  private final OrtRuntime runtime;
  private final int hidden;
  private final int experts;
  private final String operator;

  private FusedExperts(
      OrtGraph graph,
      List<OnnxTensor> bound,
      OrtRuntime runtime,
      int hidden,
      int experts,
      String operator) {
    this.graph = graph;
    this.bound = bound;
    this.runtime = runtime;
    this.hidden = hidden;
    this.experts = experts;
    this.operator = operator;
  }

  /**
   * The fused session of group {@code group} of MoE layer {@code layer}, over the same weights the
   * per-expert sessions read ({@link ModelWeights#sourceTensor} for fp32, {@link
   * ModelWeights#quantize} otherwise). fp32 weights are bound as tensors this object owns (FC1
   * alone is past protobuf's 2 GB at full size); quantized ones are written into the session, which
   * owns them, as the per-expert sessions' are.
   */
  static FusedExperts create(ModelWeights weights, int layer, int group, OrtRuntime runtime) {
    ModelConfig cfg = weights.config();
    ExpertGroup eg = cfg.expertGroups().get(group);
    int h = cfg.hidden();
    int n = eg.numExperts();
    int inter = eg.intermediate();
    Optional<QuantFormat> f =
        weights.quantization().format(cfg, layer, WeightComponent.ROUTED_EXPERTS);
    GraphBuilder b = new GraphBuilder("fused_experts_l" + layer + "_g" + group);
    String x = b.input(INPUT, DType.FLOAT, "n", (long) h);
    String r = b.input(ROUTER, DType.FLOAT, "n", (long) n);
    List<Attr> attrs = new ArrayList<>();
    attrs.add(Attr.i("k", cfg.topK()));
    attrs.add(string("activation_type", "swiglu"));
    attrs.add(Attr.i("swiglu_fusion", 1));
    attrs.add(Attr.f("activation_alpha", 1f));
    attrs.add(Attr.f("activation_beta", 0f));
    attrs.add(Attr.i("normalize_routing_weights", 0));
    String name = "fused_experts_l" + layer + "_g" + group;
    if (f.isEmpty()) {
      String fc1 = b.weight("fc1", (long) n, 2L * inter, h);
      String fc2 = b.weight("fc2", (long) n, h, inter);
      String y = b.msOp("MoE", attrs, x, r, fc1, "", fc2);
      b.output(y, OUTPUT, DType.FLOAT, "n", (long) h);
      Map<String, OnnxTensor> tensors = fp32Weights(weights, layer, group, runtime);
      try {
        OrtGraph g = OrtGraph.create(name, b.build(), b.weights().keySet(), tensors, runtime);
        return new FusedExperts(g, List.copyOf(tensors.values()), runtime, h, n, "MoE");
      } catch (RuntimeException e) {
        tensors.values().forEach(OnnxTensor::close);
        throw e;
      }
    }
    QuantFormat q = f.get();
    if (h % q.blockSize() != 0 || inter % q.blockSize() != 0) {
      throw new IllegalArgumentException(
          "QMoE needs hidden ("
              + h
              + ") and expert intermediate ("
              + inter
              + ") to be multiples of the block size "
              + q.blockSize());
    }
    attrs.add(Attr.i("expert_weight_bits", q.bits()));
    attrs.add(Attr.i("block_size", q.blockSize()));
    String fc1 = b.weight("fc1", DType.UINT8, n, 2L * inter, (long) h * q.bits() / 8);
    String s1 = b.weight("fc1_scales", DType.FLOAT, n, 2L * inter, q.blocks(h));
    String fc2 = b.weight("fc2", DType.UINT8, n, h, (long) inter * q.bits() / 8);
    String s2 = b.weight("fc2_scales", DType.FLOAT, n, h, q.blocks(inter));
    String y;
    if (q.zeroPoints()) {
      String z1 = b.weight("fc1_zp", DType.UINT8, n, 2L * inter, q.zeroPointBytesPerRow(h));
      String z2 = b.weight("fc2_zp", DType.UINT8, n, h, q.zeroPointBytesPerRow(inter));
      y = b.msOp("QMoE", attrs, x, r, fc1, s1, "", fc2, s2, "", "", "", "", z1, z2);
    } else {
      y = b.msOp("QMoE", attrs, x, r, fc1, s1, "", fc2, s2);
    }
    b.output(y, OUTPUT, DType.FLOAT, "n", (long) h);
    Map<String, ByteBuffer> data = quantizedWeights(weights, layer, group, q);
    OrtGraph g = OrtGraph.createOwning(name, b.build(), data, runtime);
    return new FusedExperts(g, List.of(), runtime, h, n, "QMoE");
  }

  /** {@code com.microsoft.MoE} or {@code com.microsoft.QMoE}. */
  String operator() {
    return operator;
  }

  int experts() {
    return experts;
  }

  /** One call: {@code rows} rows of {@code x} with their router values; returns {@code y}. */
  float[] run(float[] x, float[] router, int rows) {
    try (OnnxTensor xt = runtime.floatTensor(x, rows, hidden);
        OnnxTensor rt = runtime.floatTensor(router, rows, experts);
        OrtSession.Result res = graph.run(Map.of(INPUT, xt, ROUTER, rt))) {
      return OrtGraph.floats(res, 0);
    }
  }

  @Override
  public void close() {
    try {
      graph.close();
    } finally {
      bound.forEach(OnnxTensor::close);
    }
  }

  private static Attr string(String name, String value) {
    return new Attr(
        AttributeProto.newBuilder()
            .setName(name)
            .setType(AttributeProto.AttributeType.STRING)
            .setS(com.google.protobuf.ByteString.copyFromUtf8(value))
            .build());
  }

  private static String expertWeight(ModelConfig cfg, int layer, int group, int e, String proj) {
    return WeightNames.expert(cfg, layer, group, e, proj + "_proj");
  }

  /** FC1 (gate and up interleaved by row) and FC2 (down) of every expert, fp32, direct. */
  private static Map<String, OnnxTensor> fp32Weights(
      ModelWeights weights, int layer, int group, OrtRuntime runtime) {
    ModelConfig cfg = weights.config();
    int h = cfg.hidden();
    ExpertGroup eg = cfg.expertGroups().get(group);
    int n = eg.numExperts();
    int inter = eg.intermediate();
    FloatBuffer fc1 = direct(Math.multiplyExact(Math.multiplyExact(n, 2 * inter), h));
    FloatBuffer fc2 = direct(Math.multiplyExact(Math.multiplyExact(n, h), inter));
    for (int e = 0; e < n; e++) {
      FloatBuffer gate = weights.sourceTensor(expertWeight(cfg, layer, group, e, "gate")).data();
      FloatBuffer up = weights.sourceTensor(expertWeight(cfg, layer, group, e, "up")).data();
      FloatBuffer down = weights.sourceTensor(expertWeight(cfg, layer, group, e, "down")).data();
      for (int i = 0; i < inter; i++) {
        int base = (e * 2 * inter + 2 * i) * h;
        fc1.put(base, gate, i * h, h);
        fc1.put(base + h, up, i * h, h);
      }
      fc2.put(e * h * inter, down, 0, h * inter);
    }
    Map<String, OnnxTensor> out = new HashMap<>();
    out.put("fc1", runtime.floatTensor(fc1, n, 2L * inter, h));
    out.put("fc2", runtime.floatTensor(fc2, n, h, inter));
    return out;
  }

  /** Codes, scales and zero points of every expert in QMoE's layout (see the class comment). */
  private static Map<String, ByteBuffer> quantizedWeights(
      ModelWeights weights, int layer, int group, QuantFormat f) {
    ModelConfig cfg = weights.config();
    int h = cfg.hidden();
    ExpertGroup eg = cfg.expertGroups().get(group);
    int n = eg.numExperts();
    int inter = eg.intermediate();
    Packed fc1 = new Packed(n, 2 * inter, h, f);
    Packed fc2 = new Packed(n, h, inter, f);
    for (int e = 0; e < n; e++) {
      QuantizedMatrix gate = weights.quantize(expertWeight(cfg, layer, group, e, "gate"), f);
      QuantizedMatrix up = weights.quantize(expertWeight(cfg, layer, group, e, "up"), f);
      QuantizedMatrix down = weights.quantize(expertWeight(cfg, layer, group, e, "down"), f);
      for (int i = 0; i < inter; i++) {
        fc1.putRow(e, 2 * i, gate, i);
        fc1.putRow(e, 2 * i + 1, up, i);
      }
      for (int i = 0; i < h; i++) {
        fc2.putRow(e, i, down, i);
      }
    }
    Map<String, ByteBuffer> data = new HashMap<>();
    fc1.into(data, "fc1");
    fc2.into(data, "fc2");
    return data;
  }

  private static FloatBuffer direct(int floats) {
    return ByteBuffer.allocateDirect(Math.multiplyExact(floats, 4))
        .order(ByteOrder.nativeOrder())
        .asFloatBuffer();
  }

  /** One fused matrix {@code [experts, rows, k]} quantized: codes, scales, zero points. */
  private static final class Packed {
    private final int rows;
    private final QuantFormat f;
    private final int codeBytes;
    private final int blocks;
    private final int zpBytes;
    private final byte[] codes;
    private final float[] scales;
    private final byte[] zps;

    Packed(int experts, int rows, int k, QuantFormat f) {
      this.rows = rows;
      this.f = f;
      this.codeBytes = k * f.bits() / 8;
      this.blocks = f.blocks(k);
      this.zpBytes = f.zeroPointBytesPerRow(k);
      this.codes = new byte[Math.multiplyExact(Math.multiplyExact(experts, rows), codeBytes)];
      this.scales = new float[Math.multiplyExact(Math.multiplyExact(experts, rows), blocks)];
      this.zps = new byte[Math.multiplyExact(Math.multiplyExact(experts, rows), zpBytes)];
    }

    /** Row {@code from} of {@code m} as row {@code row} of expert {@code e}. */
    void putRow(int e, int row, QuantizedMatrix m, int from) {
      int dst = e * rows + row;
      System.arraycopy(m.codes(), from * codeBytes, codes, dst * codeBytes, codeBytes);
      System.arraycopy(m.scales(), from * blocks, scales, dst * blocks, blocks);
      if (zpBytes > 0) {
        System.arraycopy(m.zeroPoints(), from * zpBytes, zps, dst * zpBytes, zpBytes);
      }
    }

    void into(Map<String, ByteBuffer> data, String name) {
      data.put(name, ByteBuffer.wrap(codes));
      ByteBuffer s = ByteBuffer.allocate(scales.length * 4).order(ByteOrder.LITTLE_ENDIAN);
      s.asFloatBuffer().put(scales);
      data.put(name + "_scales", s);
      if (f.zeroPoints()) {
        data.put(name + "_zp", ByteBuffer.wrap(zps));
      }
    }
  }
}
