package dev.pdserve.model.onnx;

import dev.pdserve.onnx.GraphProto;
import dev.pdserve.onnx.NodeProto;
import dev.pdserve.onnx.TensorProto;
import dev.pdserve.onnx.ValueInfoProto;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * An ONNX graph under construction, the main graph ({@link GraphBuilder}) or the body of a
 * control-flow node ({@link SubgraphBuilder}): its inputs and outputs, nodes and small constant
 * initializers, and the ops the model graphs are made of.
 *
 * <p>Ops are emitted for the default domain at {@link GraphBuilder#OPSET} (or {@link #MS_DOMAIN});
 * every helper returns the name of the value it produced.
 */
public abstract sealed class GraphOps permits GraphBuilder, SubgraphBuilder {
  /** ONNX Runtime's contrib-operator domain (MatMulNBits). */
  public static final String MS_DOMAIN = "com.microsoft";

  private final String name;
  private final String namePrefix;
  private final List<ValueInfoProto> inputs = new ArrayList<>();
  private final List<ValueInfoProto> outputs = new ArrayList<>();
  private final List<NodeProto> nodes = new ArrayList<>();
  private final List<TensorProto> initializers = new ArrayList<>();
  private int counter;
  private boolean msDomain;

  GraphOps(String name, String namePrefix) {
    this.name = name;
    this.namePrefix = namePrefix;
  }

  /**
   * A builder for the body of a control-flow node ({@code Loop}, {@code If}) of this graph: its
   * values are named apart from this graph's (ONNX forbids a subgraph to redefine an outer name),
   * and it may read any value of this graph by name. Finish it with {@link #graph()} and pass that
   * as the node's graph attribute ({@link Attr#g}). It declares no weights of its own.
   */
  public SubgraphBuilder subgraph(String kind) {
    return new SubgraphBuilder(fresh(kind));
  }

  /**
   * Declares a graph input; a dimension is a {@code Long} (fixed) or a {@code String} (symbolic).
   */
  public String input(String inputName, DType type, Object... dims) {
    inputs.add(OnnxProtos.valueInfo(inputName, type, dims));
    return inputName;
  }

  /** A name no other value of this graph (or of its subgraphs) has, for a subgraph's inputs. */
  public String freshName(String hint) {
    return fresh(hint);
  }

  /** Marks an existing value as a graph output under {@code outputName}. */
  public void output(String value, String outputName, DType type, Object... dims) {
    if (!value.equals(outputName)) {
      nodes.add(
          OnnxProtos.node(
              "Identity", "", new String[] {value}, new String[] {outputName}, List.of()));
    }
    outputs.add(OnnxProtos.valueInfo(outputName, type, dims));
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
    initializers.add(OnnxProtos.rawTensor(n, type, dims, data));
    return n;
  }

  /** Adds an initializer (a weight the session owner supplies), in declaration order. */
  void addInitializer(TensorProto t) {
    initializers.add(t);
  }

  /** Emits one node with a single output and returns that output's name. */
  public String op(String opType, List<Attr> attrs, String... in) {
    return opMulti("", opType, 1, attrs, in)[0];
  }

  public String op(String opType, String... in) {
    return op(opType, List.of(), in);
  }

  /** Emits one node of the {@code com.microsoft} contrib domain with a single output. */
  public String msOp(String opType, List<Attr> attrs, String... in) {
    msDomain = true;
    return opMulti(MS_DOMAIN, opType, 1, attrs, in)[0];
  }

  /** Emits one node with {@code outCount} outputs. */
  public String[] opMulti(String opType, int outCount, List<Attr> attrs, String... in) {
    return opMulti("", opType, outCount, attrs, in);
  }

  private String[] opMulti(
      String domain, String opType, int outCount, List<Attr> attrs, String... in) {
    String[] outs = new String[outCount];
    for (int i = 0; i < outCount; i++) {
      outs[i] = fresh(opType.toLowerCase());
    }
    nodes.add(OnnxProtos.node(opType, domain, in, outs, attrs));
    return outs;
  }

  /** Whether a node of this graph is of the {@code com.microsoft} domain. */
  boolean usesMsDomain() {
    return msDomain;
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

  /** This builder's graph alone: a subgraph's body, or the main graph of a model. */
  public GraphProto graph() {
    return GraphProto.newBuilder()
        .setName(name)
        .addAllNode(nodes)
        .addAllInitializer(initializers)
        .addAllInput(inputs)
        .addAllOutput(outputs)
        .build();
  }

  private String fresh(String prefix) {
    return namePrefix + prefix + "_" + (counter++);
  }
}
