package dev.pdserve.model.graph;

import dev.pdserve.model.config.VisionConfig;
import dev.pdserve.model.onnx.Attr;
import dev.pdserve.model.onnx.DType;
import dev.pdserve.model.onnx.GraphBuilder;
import dev.pdserve.model.onnx.GraphOps;
import dev.pdserve.model.onnx.SubgraphBuilder;
import dev.pdserve.model.weights.VisionWeightNames;
import java.util.List;

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
 *
 * <p>Attention is computed in blocks of query rows so its memory is bounded: K and V of the whole
 * image are made once per ViT block, and an {@code If} picks, per image, either the whole image in
 * one go (at most {@code chunk + 1} patches: the plain graph, one {@code [heads, n, n]} score
 * tensor) or a {@code Loop} over full chunks of {@code chunk} query rows (one {@code [heads, chunk,
 * n]} score tensor at a time) followed by the last block of 2 to {@code chunk + 1} rows. Softmax is
 * per query row, so each row is computed alike either way; on ONNX Runtime's CPU provider the rows
 * are bit-identical for any chunk size as long as no block is a single row (MLAS multiplies a
 * one-row matrix with another kernel, which rounds differently), hence the blocks of at least two
 * rows.
 */
public final class VisionTowerGraph {
  private VisionTowerGraph() {}

  /** Fewest query rows per attention block: a one-row block would round differently. */
  public static final int MIN_ATTENTION_CHUNK = 2;

  /**
   * The tower of {@code v} with attention in blocks of {@code attentionChunk} query rows (the last
   * block up to one row more).
   */
  public static GraphBuilder build(VisionConfig v, int attentionChunk) {
    if (attentionChunk < MIN_ATTENTION_CHUNK) {
      throw new IllegalArgumentException(
          "vision attention chunk must be >= "
              + MIN_ATTENTION_CHUNK
              + " patches, got "
              + attentionChunk);
    }
    long w = v.width();
    int heads = v.heads();
    int hd = v.headDim();
    GraphBuilder b = new GraphBuilder("vision_tower");
    String patches = b.input("patches", DType.FLOAT, "n", (long) v.patchValues());
    String cos = b.input("cos", DType.FLOAT, "n", (long) hd / 2);
    String sin = b.input("sin", DType.FLOAT, "n", (long) hd / 2);
    String n =
        b.op("Gather", List.of(Attr.i("axis", 0)), b.shape(patches), b.constIntScalar(0)); // []
    Attention attention = new Attention(w, hd, attentionChunk, n);
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
      String rows = attention.rows(b, q, b.transpose(k, 0, 2, 1), val); // [n, w]
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

  /**
   * One block's attention, in query chunks of {@code chunk} rows.
   *
   * @param n the image's patch count, an int64 scalar of the main graph
   */
  private record Attention(long w, int hd, int chunk, String n) {
    /** Rows {@code [n, w]} of attention over {@code q [h, n, hd]}, {@code kT}, {@code v}. */
    String rows(GraphBuilder b, String q, String kT, String v) {
      SubgraphBuilder whole = b.subgraph("whole_image");
      whole.output(attend(whole, q, kT, v), whole.freshName("rows"), DType.FLOAT, "rows", w);
      SubgraphBuilder chunked = b.subgraph("query_chunks");
      chunked.output(
          inChunks(chunked, q, kT, v), chunked.freshName("rows"), DType.FLOAT, "rows", w);
      return b.op(
          "If",
          List.of(Attr.g("then_branch", chunked.graph()), Attr.g("else_branch", whole.graph())),
          b.op("Greater", n, b.constIntScalar(chunk + 1L)));
    }

    /**
     * More than {@code chunk + 1} patches: a Loop over the first {@code (n − 2) / chunk} full
     * chunks of query rows (at least one), then the last block of 2 to {@code chunk + 1} rows, in
     * order.
     */
    private String inChunks(SubgraphBuilder c, String q, String kT, String v) {
      String size = c.constIntScalar(chunk);
      String full = c.div(c.sub(n, c.constIntScalar(2)), size);
      SubgraphBuilder body = c.subgraph("query_block");
      String iteration = body.input(body.freshName("iteration"), DType.INT64);
      String go = body.input(body.freshName("cond"), DType.BOOL);
      String start = body.unsqueeze(body.mul(iteration, body.constIntScalar(chunk)), 0);
      String end = body.add(start, body.constInts(chunk));
      String block = body.op("Slice", q, start, end, body.constInts(1));
      body.output(go, body.freshName("cond_out"), DType.BOOL);
      body.output(attend(body, block, kT, v), body.freshName("rows"), DType.FLOAT, chunk, w);
      String blocks = c.op("Loop", List.of(Attr.g("body", body.graph())), full, ""); // [f, c, w]
      String tail =
          c.op(
              "Slice",
              q,
              c.unsqueeze(c.mul(full, size), 0),
              c.constInts(Long.MAX_VALUE),
              c.constInts(1));
      return c.concat(0, c.reshape(blocks, -1, w), attend(c, tail, kT, v));
    }

    /**
     * Attention of the query rows {@code q [h, r, hd]} over the whole image: rows {@code [r, w]}.
     */
    private String attend(GraphOps g, String q, String kT, String v) {
      String scores = g.mul(g.matMul(q, kT), g.constScalar((float) (1.0 / Math.sqrt(hd))));
      String ctx = g.matMul(g.softmax(scores, -1), v); // [h, r, hd]
      return g.reshape(g.transpose(ctx, 1, 0, 2), -1, w);
    }
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
