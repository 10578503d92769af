package dev.pdserve.model.onnx;

import dev.pdserve.onnx.AttributeProto;
import dev.pdserve.onnx.AttributeProto.AttributeType;
import dev.pdserve.onnx.GraphProto;

/** A node attribute, for {@link GraphOps#op(String, java.util.List, String...)} and its kin. */
public record Attr(AttributeProto proto) {
  public static Attr i(String n, long v) {
    return new Attr(named(n, AttributeType.INT).setI(v).build());
  }

  public static Attr f(String n, float v) {
    return new Attr(named(n, AttributeType.FLOAT).setF(v).build());
  }

  /** A graph attribute: the body of a {@code Loop}, a branch of an {@code If}. */
  public static Attr g(String n, GraphProto graph) {
    return new Attr(named(n, AttributeType.GRAPH).setG(graph).build());
  }

  public static Attr ints(String n, long... v) {
    AttributeProto.Builder b = named(n, AttributeType.INTS);
    for (long x : v) {
      b.addInts(x);
    }
    return new Attr(b.build());
  }

  private static AttributeProto.Builder named(String n, AttributeType type) {
    return AttributeProto.newBuilder().setName(n).setType(type);
  }
}
