package dev.pdserve.model.onnx;

import com.google.protobuf.ByteString;
import dev.pdserve.onnx.NodeProto;
import dev.pdserve.onnx.StringStringEntryProto;
import dev.pdserve.onnx.TensorProto;
import dev.pdserve.onnx.TensorShapeProto;
import dev.pdserve.onnx.TypeProto;
import dev.pdserve.onnx.ValueInfoProto;
import java.nio.ByteBuffer;
import java.util.List;

/** The ONNX protobuf messages the graph builders emit, each made in one place. */
final class OnnxProtos {
  private OnnxProtos() {}

  /** A node of {@code domain} ("" for the default) with its inputs, outputs and attributes. */
  static NodeProto node(String opType, String domain, String[] in, String[] out, List<Attr> attrs) {
    NodeProto.Builder n = NodeProto.newBuilder().setOpType(opType);
    for (String s : in) {
      n.addInput(s);
    }
    for (String s : out) {
      n.addOutput(s);
    }
    if (!domain.isEmpty()) {
      n.setDomain(domain);
    }
    for (Attr a : attrs) {
      n.addAttribute(a.proto());
    }
    return n.build();
  }

  /** A tensor value's name, element type and shape; a dimension is a Long or a symbolic String. */
  static ValueInfoProto valueInfo(String n, DType type, Object... dims) {
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

  /** An initializer whose data the session owner supplies under its name ({@link OrtGraph}). */
  static TensorProto externalTensor(String n, DType type, long[] dims) {
    TensorProto.Builder t =
        TensorProto.newBuilder()
            .setName(n)
            .setDataType(type.code())
            .setDataLocation(TensorProto.DataLocation.EXTERNAL)
            .addExternalData(
                StringStringEntryProto.newBuilder().setKey("location").setValue("pdserve:" + n));
    for (long d : dims) {
      t.addDims(d);
    }
    return t.build();
  }

  /** An initializer holding {@code data} (little-endian bytes) in the model itself. */
  static TensorProto rawTensor(String n, DType type, long[] dims, ByteBuffer data) {
    TensorProto.Builder t =
        TensorProto.newBuilder()
            .setName(n)
            .setDataType(type.code())
            .setRawData(ByteString.copyFrom(data));
    for (long d : dims) {
      t.addDims(d);
    }
    return t.build();
  }
}
