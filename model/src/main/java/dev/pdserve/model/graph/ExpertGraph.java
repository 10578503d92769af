package dev.pdserve.model.graph;

import dev.pdserve.model.onnx.DType;
import dev.pdserve.model.onnx.GraphBuilder;
import dev.pdserve.model.quant.QuantFormat;
import java.util.List;

/**
 * One routed expert, a SwiGLU MLP: {@code y = down(silu(gate(x)) * up(x))}, x {@code [n, H]}, gate
 * and up {@code [I, H]} ({@code w_gate}, {@code w_up}), down {@code [H, I]} ({@code w_down}). The
 * weights are declared weights (constant initializers), one session per expert, so ONNX Runtime
 * prepacks them once instead of converting them on every call; {@link
 * dev.pdserve.model.onnx.OrtGraph#createOwning} writes their data into the session. Callers pass n
 * ≥ 2 rows (ONNX Runtime takes another kernel for a single row, which would make results depend on
 * batching).
 *
 * <p>Quantized ({@link #build(int, int, QuantFormat)}), each projection is a MatMulNBits over the
 * weights {@code w_P_codes}, {@code w_P_scales} and (with zero points) {@code w_P_zp} for P in
 * gate, up, down.
 */
public final class ExpertGraph {
  public static final int MIN_ROWS = 2;

  /** The projections, in input order. */
  public static final List<String> PROJECTIONS = List.of("gate", "up", "down");

  private ExpertGraph() {}

  public static GraphBuilder build(int hidden, int intermediate) {
    GraphBuilder b = new GraphBuilder("expert_" + hidden + "x" + intermediate);
    String x = b.input("x", DType.FLOAT, "n", (long) hidden);
    String gate = b.weight(fp32Weight("gate"), intermediate, hidden);
    String up = b.weight(fp32Weight("up"), intermediate, hidden);
    String down = b.weight(fp32Weight("down"), hidden, intermediate);
    b.output(b.swiglu(x, gate, up, down), "y", DType.FLOAT, "n", (long) hidden);
    return b;
  }

  /** The expert with its three projections quantized in {@code f} (weights named as above). */
  public static GraphBuilder build(int hidden, int intermediate, QuantFormat f) {
    GraphBuilder b = new GraphBuilder("expert_" + hidden + "x" + intermediate + "_" + f.tag());
    String x = b.input("x", DType.FLOAT, "n", (long) hidden);
    String gate = projection(b, x, "gate", intermediate, hidden, f);
    String up = projection(b, x, "up", intermediate, hidden, f);
    String y = projection(b, b.mul(b.silu(gate), up), "down", hidden, intermediate, f);
    b.output(y, "y", DType.FLOAT, "n", (long) hidden);
    return b;
  }

  private static String projection(
      GraphBuilder b, String x, String proj, long n, long k, QuantFormat f) {
    int blocks = f.blocks(k);
    String codes = b.weight(codesInput(proj), DType.UINT8, n, blocks, f.blobBytes());
    String scales = b.weight(scalesInput(proj), DType.FLOAT, n * blocks);
    if (!f.zeroPoints()) {
      return b.matMulNBits(x, f, n, k, codes, scales);
    }
    String zp = b.weight(zeroPointsInput(proj), DType.UINT8, n * f.zeroPointBytesPerRow(k));
    return b.matMulNBits(x, f, n, k, codes, scales, zp);
  }

  /** The fp32 weight of projection {@code proj}. */
  public static String fp32Weight(String proj) {
    return "w_" + proj;
  }

  public static String codesInput(String proj) {
    return "w_" + proj + "_codes";
  }

  public static String scalesInput(String proj) {
    return "w_" + proj + "_scales";
  }

  public static String zeroPointsInput(String proj) {
    return "w_" + proj + "_zp";
  }
}
