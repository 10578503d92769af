package dev.pdserve.model.onnx;

import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.QuantNames;
import dev.pdserve.onnx.ModelProto;
import dev.pdserve.onnx.OperatorSetIdProto;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Builds an ONNX {@link ModelProto} in Java: the main graph's inputs, outputs, nodes and small
 * constant initializers ({@link GraphOps}), control-flow bodies ({@link #subgraph}), and named
 * weights, fp32 or quantized, whose data is supplied when the session is created (see {@link
 * OrtGraph}), so a graph never carries large tensors inside its protobuf.
 *
 * <p>Ops are emitted for the default domain at {@link #OPSET}; every helper returns the name of the
 * value it produced.
 */
public final class GraphBuilder extends GraphOps {
  /** Default-domain opset the graphs target. */
  public static final int OPSET = 17;

  private static final int IR_VERSION = 8;

  private final Map<String, long[]> weights = new LinkedHashMap<>();

  public GraphBuilder(String name) {
    super(name, "");
  }

  /**
   * Declares a float weight of the given shape. Its data is not part of the model: the session
   * owner supplies a tensor under the same name when the session is created.
   */
  public String weight(String weightName, long... dims) {
    return weight(weightName, DType.FLOAT, dims);
  }

  /** Declares a weight of element type {@code type} (see {@link #weight(String, long...)}). */
  public String weight(String weightName, DType type, long... dims) {
    if (weights.containsKey(weightName)) {
      return weightName;
    }
    weights.put(weightName, dims.clone());
    addInitializer(OnnxProtos.externalTensor(weightName, type, dims));
    return weightName;
  }

  /** The weights this graph declared, with their shapes, in declaration order. */
  public Map<String, long[]> weights() {
    return weights;
  }

  /** {@code x · wᵀ} for the weight {@code base} {@code [n, k]}: fp32 Gemm or quantized. */
  public String linear(String x, String base, long n, long k, Optional<QuantFormat> f) {
    return f.isPresent() ? quantLinear(x, base, n, k, f.get()) : linear(x, weight(base, n, k));
  }

  /**
   * {@code x · wᵀ} for a weight {@code [n, k]} quantized in {@code f}: declares the weight's codes,
   * scales and (with zero points) zero points under {@link QuantNames} of {@code base}, and emits
   * one {@code com.microsoft.MatMulNBits}.
   */
  public String quantLinear(String x, String base, long n, long k, QuantFormat f) {
    int blocks = f.blocks(k);
    String codes = weight(QuantNames.codes(base, f), DType.UINT8, n, blocks, f.blobBytes());
    String scales = weight(QuantNames.scales(base, f), DType.FLOAT, n * blocks);
    return f.zeroPoints()
        ? matMulNBits(
            x,
            f,
            n,
            k,
            codes,
            scales,
            weight(QuantNames.zeroPoints(base, f), DType.UINT8, n * f.zeroPointBytesPerRow(k)))
        : matMulNBits(x, f, n, k, codes, scales);
  }

  /**
   * One MatMulNBits node over given code, scale (and zero-point) values; its {@code accuracy_level}
   * is {@code f}'s compute's (0: fp32, 4: int8 activations).
   */
  public String matMulNBits(String x, QuantFormat f, long n, long k, String... quantInputs) {
    String[] in = new String[quantInputs.length + 1];
    in[0] = x;
    System.arraycopy(quantInputs, 0, in, 1, quantInputs.length);
    return msOp(
        "MatMulNBits",
        List.of(
            Attr.i("K", k),
            Attr.i("N", n),
            Attr.i("bits", f.bits()),
            Attr.i("block_size", f.blockSize()),
            Attr.i("accuracy_level", f.compute().accuracyLevel())),
        in);
  }

  /**
   * Rows {@code ids} of the table {@code base} {@code [n, k]} quantized in {@code f} along k (one
   * scale, and zero point, per block of a row): declares the table's codes, scales and (with zero
   * points) zero points under {@link QuantNames}' gather names — the same bytes as {@link
   * #quantLinear}'s, in 2-D shapes — and emits one {@code com.microsoft.GatherBlockQuantized}
   * (uint8 data with the {@code bits} attribute, gathered along axis 0, quantized along axis 1),
   * each value {@code (code − zeroPoint) · scale} in fp32. A k that is not a multiple of the block
   * is gathered padded to whole blocks and sliced back to k.
   */
  public String quantGather(String ids, String base, long n, long k, QuantFormat f) {
    int blocks = f.blocks(k);
    String codes =
        weight(QuantNames.gatherCodes(base, f), DType.UINT8, n, (long) blocks * f.blobBytes());
    String scales = weight(QuantNames.gatherScales(base, f), DType.FLOAT, n, blocks);
    String[] in =
        f.zeroPoints()
            ? new String[] {
              codes,
              ids,
              scales,
              weight(
                  QuantNames.gatherZeroPoints(base, f), DType.UINT8, n, f.zeroPointBytesPerRow(k))
            }
            : new String[] {codes, ids, scales};
    String rows = gatherBlockQuantized(f, in);
    long padded = (long) blocks * f.blockSize();
    return padded == k ? rows : slice(rows, 0, k, 1);
  }

  /**
   * One GatherBlockQuantized node over given data, indices, scales (and zero points), gathering
   * along axis 0 of data quantized along its last axis in blocks of {@code f}'s block size.
   */
  public String gatherBlockQuantized(QuantFormat f, String... in) {
    return msOp(
        "GatherBlockQuantized",
        List.of(
            Attr.i("gather_axis", 0),
            Attr.i("quantize_axis", 1),
            Attr.i("block_size", f.blockSize()),
            Attr.i("bits", f.bits())),
        in);
  }

  /** The model: this graph at {@link #OPSET}, with the contrib domain where a node uses it. */
  public ModelProto build() {
    return ModelProto.newBuilder()
        .setIrVersion(IR_VERSION)
        .setProducerName("pdserve")
        .setProducerVersion("0.1")
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(OPSET))
        .addAllOpsetImport(
            usesMsDomain()
                ? List.of(
                    OperatorSetIdProto.newBuilder().setDomain(MS_DOMAIN).setVersion(1).build())
                : List.of())
        .setGraph(graph())
        .build();
  }
}
