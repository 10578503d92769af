package dev.pdserve.model.onnx;

import com.google.protobuf.ByteString;
import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.QuantNames;
import dev.pdserve.onnx.AttributeProto;
import dev.pdserve.onnx.GraphProto;
import dev.pdserve.onnx.ModelProto;
import dev.pdserve.onnx.NodeProto;
import dev.pdserve.onnx.OperatorSetIdProto;
import dev.pdserve.onnx.StringStringEntryProto;
import dev.pdserve.onnx.TensorProto;
import dev.pdserve.onnx.TensorShapeProto;
import dev.pdserve.onnx.TypeProto;
import dev.pdserve.onnx.ValueInfoProto;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Builds an ONNX {@link ModelProto} in Java: graph inputs and outputs, nodes, small constant
 * initializers, and named weights whose data is supplied when the session is created (see {@link
 * OrtGraph}), so a graph never carries large tensors inside its protobuf.
 *
 * <p>Ops are emitted for the default domain at {@link #OPSET}; every helper returns the name of the
 * value it produced.
 */
public final class GraphBuilder {
  /** Default-domain opset the graphs target. */
  public static final int OPSET = 17;

  private static final int IR_VERSION = 8;

  private final String name;
  private final List<ValueInfoProto> inputs = new ArrayList<>();
  private final List<ValueInfoProto> outputs = new ArrayList<>();
  private final List<NodeProto> nodes = new ArrayList<>();
  private final List<TensorProto> initializers = new ArrayList<>();
  private final Map<String, long[]> weights = new LinkedHashMap<>();
  private final String namePrefix;
  private int counter;
  private boolean msDomain;

  /** ONNX Runtime's contrib-operator domain (MatMulNBits). */
  public static final String MS_DOMAIN = "com.microsoft";

  public GraphBuilder(String name) {
    this(name, "");
  }

  private GraphBuilder(String name, String namePrefix) {
    this.name = name;
    this.namePrefix = namePrefix;
  }

  /**
   * A builder for the body of a control-flow node ({@code Loop}, {@code If}) of this graph: its
   * values are named apart from this graph's (ONNX forbids a subgraph to redefine an outer name),
   * and it may read any value of this graph by name. Finish it with {@link #graph()} and pass that
   * as the node's graph attribute ({@link Attr#g}). It declares no weights of its own.
   */
  public GraphBuilder subgraph(String kind) {
    String sub = fresh(kind);
    return new GraphBuilder(sub, sub + "/");
  }

  /**
   * Declares a graph input; a dimension is a {@code Long} (fixed) or a {@code String} (symbolic).
   */
  public String input(String inputName, DType type, Object... dims) {
    inputs.add(valueInfo(inputName, type, dims));
    return inputName;
  }

  /** A name no other value of this graph (or of its subgraphs) has, for a subgraph's inputs. */
  public String freshName(String hint) {
    return fresh(hint);
  }

  /** Marks an existing value as a graph output under {@code outputName}. */
  public void output(String value, String outputName, DType type, Object... dims) {
    if (!value.equals(outputName)) {
      nodes.add(node("Identity", new String[] {value}, new String[] {outputName}));
    }
    outputs.add(valueInfo(outputName, type, dims));
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
    TensorProto.Builder t =
        TensorProto.newBuilder()
            .setName(weightName)
            .setDataType(type.code())
            .setDataLocation(TensorProto.DataLocation.EXTERNAL)
            .addExternalData(
                StringStringEntryProto.newBuilder()
                    .setKey("location")
                    .setValue("pdserve:" + weightName));
    for (long d : dims) {
      t.addDims(d);
    }
    initializers.add(t.build());
    return weightName;
  }

  /** The weights this graph declared, with their shapes, in declaration order. */
  public Map<String, long[]> weights() {
    return weights;
  }

  public String constFloats(long[] dims, float... values) {
    ByteBuffer buf = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : values) {
      buf.putFloat(v);
    }
    buf.flip();
    return constant(DType.FLOAT, dims, buf);
  }

  public String constScalar(float value) {
    return constFloats(new long[0], value);
  }

  public String constInts(long... values) {
    ByteBuffer buf = ByteBuffer.allocate(values.length * 8).order(ByteOrder.LITTLE_ENDIAN);
    for (long v : values) {
      buf.putLong(v);
    }
    buf.flip();
    return constant(DType.INT64, new long[] {values.length}, buf);
  }

  public String constIntScalar(long value) {
    ByteBuffer buf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(value);
    buf.flip();
    return constant(DType.INT64, new long[0], buf);
  }

  private String constant(DType type, long[] dims, ByteBuffer data) {
    String n = fresh("const");
    TensorProto.Builder t =
        TensorProto.newBuilder()
            .setName(n)
            .setDataType(type.code())
            .setRawData(ByteString.copyFrom(data));
    for (long d : dims) {
      t.addDims(d);
    }
    initializers.add(t.build());
    return n;
  }

  /** Emits one node with a single output and returns that output's name. */
  public String op(String opType, List<Attr> attrs, String... in) {
    String out = fresh(opType.toLowerCase());
    NodeProto.Builder n = node(opType, in, new String[] {out}).toBuilder();
    for (Attr a : attrs) {
      n.addAttribute(a.proto());
    }
    nodes.add(n.build());
    return out;
  }

  public String op(String opType, String... in) {
    return op(opType, List.of(), in);
  }

  /** Emits one node of the {@code com.microsoft} contrib domain with a single output. */
  public String msOp(String opType, List<Attr> attrs, String... in) {
    msDomain = true;
    String out = fresh(opType.toLowerCase());
    NodeProto.Builder n = node(opType, in, new String[] {out}).toBuilder().setDomain(MS_DOMAIN);
    for (Attr a : attrs) {
      n.addAttribute(a.proto());
    }
    nodes.add(n.build());
    return out;
  }

  /** Emits one node with {@code outCount} outputs. */
  public String[] opMulti(String opType, int outCount, List<Attr> attrs, String... in) {
    String[] outs = new String[outCount];
    for (int i = 0; i < outCount; i++) {
      outs[i] = fresh(opType.toLowerCase());
    }
    NodeProto.Builder n = node(opType, in, outs).toBuilder();
    for (Attr a : attrs) {
      n.addAttribute(a.proto());
    }
    nodes.add(n.build());
    return outs;
  }

  // ---- helpers for the ops the model graphs use ----

  public String add(String a, String b) {
    return op("Add", a, b);
  }

  public String sub(String a, String b) {
    return op("Sub", a, b);
  }

  public String mul(String a, String b) {
    return op("Mul", a, b);
  }

  public String div(String a, String b) {
    return op("Div", a, b);
  }

  public String matMul(String a, String b) {
    return op("MatMul", a, b);
  }

  /**
   * {@code x · wᵀ} for a 2-D {@code x} and a weight stored {@code [out, in]} (checkpoint layout).
   */
  public String linear(String x, String w) {
    return op("Gemm", List.of(Attr.i("transB", 1)), x, w);
  }

  /** {@code x · wᵀ + b} for a 2-D {@code x}, a weight stored {@code [out, in]} and a bias. */
  public String linear(String x, String w, String b) {
    return op("Gemm", List.of(Attr.i("transB", 1)), x, w, b);
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

  /** {@code x · wᵀ} for the weight {@code base} {@code [n, k]}: fp32 Gemm or quantized. */
  public String linear(String x, String base, long n, long k, Optional<QuantFormat> f) {
    return f.isPresent() ? quantLinear(x, base, n, k, f.get()) : linear(x, weight(base, n, k));
  }

  /** LayerNormalization over the last axis: {@code (x − mean) / sqrt(var + eps) · scale + bias}. */
  public String layerNorm(String x, String scale, String bias, double eps) {
    return op(
        "LayerNormalization",
        List.of(Attr.i("axis", -1), Attr.f("epsilon", (float) eps)),
        x,
        scale,
        bias);
  }

  /** Exact GELU, {@code x · ½(1 + erf(x / √2))}. */
  public String gelu(String x) {
    String erf = op("Erf", mul(x, constScalar((float) (1.0 / Math.sqrt(2.0)))));
    return mul(mul(x, constScalar(0.5f)), add(erf, constScalar(1f)));
  }

  /** Quick GELU, {@code x · sigmoid(1.702 x)}. */
  public String quickGelu(String x) {
    return mul(x, sigmoid(mul(x, constScalar(1.702f))));
  }

  public String sigmoid(String x) {
    return op("Sigmoid", x);
  }

  public String silu(String x) {
    return mul(x, sigmoid(x));
  }

  public String reshape(String x, long... shape) {
    return op("Reshape", x, constInts(shape));
  }

  public String transpose(String x, long... perm) {
    return op("Transpose", List.of(Attr.ints("perm", perm)), x);
  }

  public String softmax(String x, int axis) {
    return op("Softmax", List.of(Attr.i("axis", axis)), x);
  }

  public String concat(int axis, String... xs) {
    return op("Concat", List.of(Attr.i("axis", axis)), xs);
  }

  public String cast(String x, DType to) {
    return op("Cast", List.of(Attr.i("to", to.code())), x);
  }

  public String sqrt(String x) {
    return op("Sqrt", x);
  }

  public String max(String a, String b) {
    return op("Max", a, b);
  }

  public String where(String cond, String a, String b) {
    return op("Where", cond, a, b);
  }

  public String shape(String x) {
    return op("Shape", x);
  }

  /** {@code x[start:end]} along {@code axis}. */
  public String slice(String x, long start, long end, long axis) {
    return op("Slice", x, constInts(start), constInts(end), constInts(axis));
  }

  public String unsqueeze(String x, long... axes) {
    return op("Unsqueeze", x, constInts(axes));
  }

  /** Reshape to a shape computed in the graph (an int64 1-D value). */
  public String reshapeTo(String x, String shapeValue) {
    return op("Reshape", x, shapeValue);
  }

  /** Mean over the last axis, keeping it (opset 17 takes axes as an attribute). */
  public String reduceMeanLast(String x) {
    return op("ReduceMean", List.of(Attr.ints("axes", -1), Attr.i("keepdims", 1)), x);
  }

  /** Sum over the last axis, keeping it (ReduceSum takes axes as an input since opset 13). */
  public String reduceSumLast(String x) {
    return op("ReduceSum", List.of(Attr.i("keepdims", 1)), x, constInts(-1));
  }

  /** Sum of the {@code k} columns of {@code [rows, k]}, added left to right: one fixed order. */
  public String sumColumns(String x, int k) {
    String acc = slice(x, 0, 1, 1);
    for (int j = 1; j < k; j++) {
      acc = add(acc, slice(x, j, j + 1, 1));
    }
    return acc;
  }

  /** Top-k along the last axis: {values, int64 indices}, largest first, ties to the lower index. */
  public String[] topK(String x, long k) {
    return opMulti(
        "TopK",
        2,
        List.of(Attr.i("axis", -1), Attr.i("largest", 1), Attr.i("sorted", 1)),
        x,
        constInts(k));
  }

  public String gatherElements(String x, String idx, int axis) {
    return op("GatherElements", List.of(Attr.i("axis", axis)), x, idx);
  }

  public String gather(String x, String idx, int axis) {
    return op("Gather", List.of(Attr.i("axis", axis)), x, idx);
  }

  /** RMSNorm over the last axis: {@code x / sqrt(mean(x²) + eps) * w}. */
  public String rmsNorm(String x, String w, double eps) {
    String ms = reduceMeanLast(mul(x, x));
    return mul(div(x, sqrt(add(ms, constScalar((float) eps)))), w);
  }

  /** SwiGLU MLP {@code down(silu(gate(x)) * up(x))} with weights stored {@code [out, in]}. */
  public String swiglu(String x, String gate, String up, String down) {
    return linear(mul(silu(linear(x, gate)), linear(x, up)), down);
  }

  /** This builder's graph alone: a subgraph's body, or the main graph of {@link #build()}. */
  public GraphProto graph() {
    if (!weights.isEmpty() && !namePrefix.isEmpty()) {
      throw new IllegalStateException("subgraph " + name + " declares weights " + weights.keySet());
    }
    return GraphProto.newBuilder()
        .setName(name)
        .addAllNode(nodes)
        .addAllInitializer(initializers)
        .addAllInput(inputs)
        .addAllOutput(outputs)
        .build();
  }

  public ModelProto build() {
    GraphProto graph = graph();
    return ModelProto.newBuilder()
        .setIrVersion(IR_VERSION)
        .setProducerName("pdserve")
        .setProducerVersion("0.1")
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(OPSET))
        .addAllOpsetImport(
            msDomain
                ? List.of(
                    OperatorSetIdProto.newBuilder().setDomain(MS_DOMAIN).setVersion(1).build())
                : List.of())
        .setGraph(graph)
        .build();
  }

  private String fresh(String prefix) {
    return namePrefix + prefix + "_" + (counter++);
  }

  private static NodeProto node(String opType, String[] in, String[] out) {
    NodeProto.Builder n = NodeProto.newBuilder().setOpType(opType);
    for (String s : in) {
      n.addInput(s);
    }
    for (String s : out) {
      n.addOutput(s);
    }
    return n.build();
  }

  private static ValueInfoProto valueInfo(String n, DType type, Object... dims) {
    TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
    for (Object d : dims) {
      TensorShapeProto.Dimension.Builder dim = TensorShapeProto.Dimension.newBuilder();
      if (d instanceof String s) {
        dim.setDimParam(s);
      } else {
        dim.setDimValue(((Number) d).longValue());
      }
      shape.addDim(dim);
    }
    return ValueInfoProto.newBuilder()
        .setName(n)
        .setType(
            TypeProto.newBuilder()
                .setTensorType(
                    TypeProto.Tensor.newBuilder().setElemType(type.code()).setShape(shape)))
        .build();
  }

  /** A node attribute. */
  public record Attr(AttributeProto proto) {
    public static Attr i(String n, long v) {
      return new Attr(
          AttributeProto.newBuilder()
              .setName(n)
              .setType(AttributeProto.AttributeType.INT)
              .setI(v)
              .build());
    }

    public static Attr f(String n, float v) {
      return new Attr(
          AttributeProto.newBuilder()
              .setName(n)
              .setType(AttributeProto.AttributeType.FLOAT)
              .setF(v)
              .build());
    }

    /** A graph attribute: the body of a {@code Loop}, a branch of an {@code If}. */
    public static Attr g(String n, GraphProto graph) {
      return new Attr(
          AttributeProto.newBuilder()
              .setName(n)
              .setType(AttributeProto.AttributeType.GRAPH)
              .setG(graph)
              .build());
    }

    public static Attr ints(String n, long... v) {
      AttributeProto.Builder b =
          AttributeProto.newBuilder().setName(n).setType(AttributeProto.AttributeType.INTS);
      for (long x : v) {
        b.addInts(x);
      }
      return new Attr(b.build());
    }
  }
}
