package dev.pdserve.model.graph;

import dev.pdserve.model.onnx.DType;
import dev.pdserve.model.onnx.GraphBuilder;

/**
 * One routed expert, a SwiGLU MLP, with its weights as graph inputs so a single session serves
 * every expert of the same shape: {@code y = down(silu(gate(x)) * up(x))}, x {@code [n, H]}, gate
 * and up {@code [I, H]}, down {@code [H, I]}. Callers pass n ≥ 2 rows (ONNX Runtime takes another
 * kernel for a single row of a non-constant product, which would make results depend on batching).
 */
public final class ExpertGraph {
  public static final int MIN_ROWS = 2;

  private ExpertGraph() {}

  public static GraphBuilder build(int hidden, int intermediate) {
    GraphBuilder b = new GraphBuilder("expert_" + hidden + "x" + intermediate);
    String x = b.input("x", DType.FLOAT, "n", (long) hidden);
    String gate = b.input("w_gate", DType.FLOAT, (long) intermediate, (long) hidden);
    String up = b.input("w_up", DType.FLOAT, (long) intermediate, (long) hidden);
    String down = b.input("w_down", DType.FLOAT, (long) hidden, (long) intermediate);
    b.output(b.swiglu(x, gate, up, down), "y", DType.FLOAT, "n", (long) hidden);
    return b;
  }
}
