package dev.pdserve.model.onnx;

import dev.pdserve.onnx.TensorProto;

/** Element types used by pdserve graphs, with their ONNX codes. */
public enum DType {
  FLOAT(TensorProto.DataType.FLOAT),
  FLOAT16(TensorProto.DataType.FLOAT16),
  BFLOAT16(TensorProto.DataType.BFLOAT16),
  INT64(TensorProto.DataType.INT64),
  INT32(TensorProto.DataType.INT32),
  UINT8(TensorProto.DataType.UINT8),
  BOOL(TensorProto.DataType.BOOL);

  private final TensorProto.DataType onnx;

  DType(TensorProto.DataType onnx) {
    this.onnx = onnx;
  }

  public int code() {
    return onnx.getNumber();
  }
}
