package dev.pdserve.model.graph;

import dev.pdserve.model.config.VisionConfig;
import dev.pdserve.model.onnx.DType;
import dev.pdserve.model.onnx.GraphBuilder;
import dev.pdserve.model.weights.VisionWeightNames;

/**
 * The ViT of ERNIE-4.5-VL over one image's patches:
 *
 * <pre>
 * inputs   patches [n, C·p·p]   flattened patches in merge-window order
 *          cos, sin [n, hd/2]   2-D rotary angles of each patch (see VisionRope)
 * output   features [n, width]
 * </pre>
 *
 * The patch embedding is a Linear without bias; each block is pre-LayerNorm: {@code x += proj(
 * attention(qkv(norm1(x))))}, {@code x += fc2(quickGelu(fc1(norm2(x))))}, with biased projections
 * and full (non-causal) attention over the image's patches; a final LayerNorm ends the tower. The
 * rotary embedding rotates each head's halves: dims {@code d} and {@code d + hd/2} rotate together
 * by angle {@code d} of the input.
 */
public final class VisionTowerGraph {
  private VisionTowerGraph() {}

  public static GraphBuilder build(VisionConfig v) {
    long w = v.width();
    int heads = v.heads();
    int hd = v.headDim();
    GraphBuilder b = new GraphBuilder("vision_tower");
    String patches = b.input("patches", DType.FLOAT, "n", (long) v.patchValues());
    String cos = b.input("cos", DType.FLOAT, "n", (long) hd / 2);
    String sin = b.input("sin", DType.FLOAT, "n", (long) hd / 2);
    String x = b.linear(patches, b.weight(VisionWeightNames.PATCH_EMBED, w, v.patchValues()));
    for (int blk = 0; blk < v.depth(); blk++) {
      String p = VisionWeightNames.block(blk);
      String xn = norm(b, x, p + "norm1.", w, v.layerNormEps());
      String qkv =
          b.linear(
              xn, b.weight(p + "attn.qkv.weight", 3 * w, w), b.weight(p + "attn.qkv.bias", 3 * w));
      String q = heads(b, rope(b, b.slice(qkv, 0, w, 1), heads, hd, cos, sin)); // [h, n, hd]
      String k = heads(b, rope(b, b.slice(qkv, w, 2 * w, 1), heads, hd, cos, sin));
      String val = heads(b, b.reshape(b.slice(qkv, 2 * w, 3 * w, 1), -1, heads, hd));
      String scores =
          b.mul(b.matMul(q, b.transpose(k, 0, 2, 1)), b.constScalar((float) (1.0 / Math.sqrt(hd))));
      String ctx = b.matMul(b.softmax(scores, -1), val); // [h, n, hd]
      String rows = b.reshape(b.transpose(ctx, 1, 0, 2), -1, w);
      x =
          b.add(
              x,
              b.linear(
                  rows, b.weight(p + "attn.proj.weight", w, w), b.weight(p + "attn.proj.bias", w)));
      String xn2 = norm(b, x, p + "norm2.", w, v.layerNormEps());
      long mlp = v.mlpWidth();
      String hidden =
          b.quickGelu(
              b.linear(
                  xn2, b.weight(p + "mlp.fc1.weight", mlp, w), b.weight(p + "mlp.fc1.bias", mlp)));
      x =
          b.add(
              x,
              b.linear(
                  hidden, b.weight(p + "mlp.fc2.weight", w, mlp), b.weight(p + "mlp.fc2.bias", w)));
    }
    String out = norm(b, x, VisionWeightNames.FINAL_NORM, w, v.layerNormEps());
    b.output(out, "features", DType.FLOAT, "n", w);
    return b;
  }

  private static String norm(GraphBuilder b, String x, String prefix, long w, double eps) {
    return b.layerNorm(x, b.weight(prefix + "weight", w), b.weight(prefix + "bias", w), eps);
  }

  /** [n, heads·hd] or [n, heads, hd] to [heads, n, hd]. */
  private static String heads(GraphBuilder b, String x) {
    return b.transpose(x, 1, 0, 2);
  }

  /** Rotate-half rotary on {@code [n, heads·hd]}, returned as {@code [n, heads, hd]}. */
  private static String rope(GraphBuilder b, String x, int heads, int hd, String cos, String sin) {
    String x3 = b.reshape(x, -1, heads, hd);
    String a = b.slice(x3, 0, hd / 2, 2);
    String c = b.slice(x3, hd / 2, hd, 2);
    String cos3 = b.reshape(cos, -1, 1, hd / 2);
    String sin3 = b.reshape(sin, -1, 1, hd / 2);
    String outA = b.sub(b.mul(a, cos3), b.mul(c, sin3));
    String outC = b.add(b.mul(c, cos3), b.mul(a, sin3));
    return b.concat(2, outA, outC);
  }
}
