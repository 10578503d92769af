package dev.pdserve.model.graph;

import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.onnx.DType;
import dev.pdserve.model.onnx.GraphBuilder;
import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.WeightComponent;
import dev.pdserve.model.quant.WeightQuantization;
import dev.pdserve.model.weights.WeightNames;
import java.util.List;
import java.util.Optional;
import java.util.function.BiFunction;

/**
 * Builds the ONNX graph of one decoder layer, in one form for prefill (many tokens of one sequence)
 * and decode (one new token for each of a batch of sequences of different lengths):
 *
 * <pre>
 * inputs   x [B·Tq, H]            new tokens' hidden states, sequence-major, padded to Tq per sequence
 *          cos, sin [B·Tq, hd/2]  rotary angles of each new token (interleaved pairs)
 *          past_k, past_v [B, kvh, S, hd]  cached post-RoPE keys/values, zero beyond each sequence's past
 *          kv_index [B, kvh, Tq, 3] int64  where each new key/value goes: (b, head, past_b + t)
 *          mask [B, Tq, S]         additive: 0 where a query may attend, -1e9 elsewhere
 *          vision [B·Tq, 1] bool   (MoE layers with a vision group) token modality
 * outputs  dense layer: out [B·Tq, H]
 *          MoE layer:   base [B·Tq, H] = h + shared(hn),  hn [B·Tq, H] = RMSNorm(h),
 *                       topk_idx [B·Tq, k] int64 (expert index within the token's group),
 *                       topk_w [B·Tq, k] renormalised gate weights
 *          both:        k_new, v_new [B, kvh, Tq, hd]
 * </pre>
 *
 * Each sequence's keys are a prefix of the S slots (its past, then its new tokens), padding is a
 * zero tail, and masked scores are exact zeros after the softmax: summation order over real keys is
 * the same whatever the padding. Callers pass at least two rows (ONNX Runtime reduces a single row
 * along another path). The query group is folded into the rows of the attention products ({@code
 * [B, kvh, Tq·g, hd]}), so every product has at least two rows: ONNX Runtime then computes each row
 * the same way whatever the batch, and a sequence's output does not depend on what it was batched
 * with.
 *
 * <p>With a half {@link KvDtype} the new keys (after RoPE) and values are rounded to it (a Cast to
 * fp16 or bf16 and back) before anything uses them: the attention of this step reads the rounded
 * values, and so does every later step, from whatever cache holds them. A prompt prefilled in one
 * step or in chunks, here or on another node, is therefore attended to over the same values, and a
 * cache may store them in 2 bytes without loss.
 */
public final class LayerGraph {
  public static final float MASKED = -1e9f;

  private LayerGraph() {}

  /** The layer whose new keys and values are rounded to {@code kvDtype} (see the class comment). */
  public static GraphBuilder build(ModelConfig cfg, int layer, KvDtype kvDtype) {
    return build(cfg, layer, kvDtype, WeightQuantization.NONE);
  }

  /**
   * As above, with the attention projections, the dense MLP and the shared experts in the formats
   * {@code quant} gives them (MatMulNBits nodes over derived weights, see {@link
   * GraphBuilder#quantLinear}).
   */
  public static GraphBuilder build(
      ModelConfig cfg, int layer, KvDtype kvDtype, WeightQuantization quant) {
    Optional<QuantFormat> attn = quant.format(cfg, layer, WeightComponent.ATTENTION);
    int h = cfg.hidden();
    int nh = cfg.numHeads();
    int kvh = cfg.numKvHeads();
    int hd = cfg.headDim();
    int g = cfg.queryGroup();
    GraphBuilder b = new GraphBuilder("layer" + layer);

    String x = b.input("x", DType.FLOAT, "m", (long) h);
    String cos = b.input("cos", DType.FLOAT, "m", (long) hd / 2);
    String sin = b.input("sin", DType.FLOAT, "m", (long) hd / 2);
    String pastK = b.input("past_k", DType.FLOAT, "b", (long) kvh, "s", (long) hd);
    String pastV = b.input("past_v", DType.FLOAT, "b", (long) kvh, "s", (long) hd);
    String kvIndex = b.input("kv_index", DType.INT64, "b", (long) kvh, "tq", 3L);
    String mask = b.input("mask", DType.FLOAT, "b", "tq", "s");

    // ---- attention ----
    String xn = b.rmsNorm(x, b.weight(WeightNames.inputNorm(layer), h), cfg.rmsNormEps());
    String q = rope(b, b.linear(xn, WeightNames.q(layer), nh * hd, h, attn), nh, hd, cos, sin);
    String k =
        roundTo(
            b,
            kvDtype,
            rope(b, b.linear(xn, WeightNames.k(layer), kvh * hd, h, attn), kvh, hd, cos, sin));
    String v = roundTo(b, kvDtype, b.linear(xn, WeightNames.v(layer), kvh * hd, h, attn));

    String bt = b.slice(b.shape(mask), 0, 2, 0); // [B, Tq]
    String q5 =
        b.transpose(b.reshapeTo(q, b.concat(0, bt, b.constInts(kvh, g, hd))), 0, 2, 1, 3, 4);
    String qRows = b.reshape(q5, 0, 0, -1, hd); // [B, kvh, Tq·g, hd]
    String kNew = b.transpose(b.reshapeTo(k, b.concat(0, bt, b.constInts(kvh, hd))), 0, 2, 1, 3);
    String vNew = b.transpose(b.reshapeTo(v, b.concat(0, bt, b.constInts(kvh, hd))), 0, 2, 1, 3);
    String keys = b.op("ScatterND", pastK, kvIndex, kNew); // [B, kvh, S, hd]
    String values = b.op("ScatterND", pastV, kvIndex, vNew);

    String scores =
        b.mul(
            b.matMul(qRows, b.transpose(keys, 0, 1, 3, 2)),
            b.constScalar((float) (1.0 / Math.sqrt(hd))));
    String scoresShape = b.shape(scores);
    String s5 =
        b.reshapeTo(
            scores,
            b.concat(
                0,
                b.slice(scoresShape, 0, 2, 0),
                b.constInts(-1, g),
                b.slice(scoresShape, 3, 4, 0)));
    String probs = b.reshapeTo(b.softmax(b.add(s5, b.unsqueeze(mask, 1, 3)), -1), scoresShape);
    String ctx = b.matMul(probs, values); // [B, kvh, Tq·g, hd]
    String ctxShape = b.slice(b.shape(ctx), 0, 2, 0);
    String ctx5 = b.reshapeTo(ctx, b.concat(0, ctxShape, b.constInts(-1, g, hd)));
    String ctxRows = b.reshape(b.transpose(ctx5, 0, 2, 1, 3, 4), -1, nh * hd);
    String hRes = b.add(x, b.linear(ctxRows, WeightNames.o(layer), h, nh * hd, attn));

    // ---- MLP ----
    String hn = b.rmsNorm(hRes, b.weight(WeightNames.postNorm(layer), h), cfg.rmsNormEps());
    if (cfg.layerKind(layer) == LayerKind.DENSE) {
      int inter = cfg.denseIntermediate();
      String mlp =
          swiglu(
              b,
              hn,
              layer,
              h,
              inter,
              WeightNames::denseMlp,
              quant.format(cfg, layer, WeightComponent.DENSE_MLP));
      b.output(b.add(hRes, mlp), "out", DType.FLOAT, "m", (long) h);
    } else {
      String base = hRes;
      if (cfg.numSharedExperts() > 0) {
        int si = cfg.sharedIntermediate();
        base =
            b.add(
                hRes,
                swiglu(
                    b,
                    hn,
                    layer,
                    h,
                    si,
                    WeightNames::sharedExpert,
                    quant.format(cfg, layer, WeightComponent.SHARED_EXPERTS)));
      }
      List<Integer> groups = cfg.groupsInLayer(layer);
      String[] text = route(b, cfg, layer, groups.get(0), hn);
      String idx = text[0];
      String w = text[1];
      if (groups.size() > 1) {
        String vision = b.input("vision", DType.BOOL, "m", 1L);
        String[] vis = route(b, cfg, layer, groups.get(1), hn);
        idx = b.where(vision, vis[0], idx);
        w = b.where(vision, vis[1], w);
      }
      b.output(base, "base", DType.FLOAT, "m", (long) h);
      b.output(hn, "hn", DType.FLOAT, "m", (long) h);
      b.output(idx, "topk_idx", DType.INT64, "m", (long) cfg.topK());
      b.output(w, "topk_w", DType.FLOAT, "m", (long) cfg.topK());
    }
    b.output(kNew, "k_new", DType.FLOAT, "b", (long) kvh, "tq", (long) hd);
    b.output(vNew, "v_new", DType.FLOAT, "b", (long) kvh, "tq", (long) hd);
    return b;
  }

  /** SwiGLU over the weights {@code name(layer, "gate_proj" | "up_proj" | "down_proj")}. */
  private static String swiglu(
      GraphBuilder b,
      String x,
      int layer,
      int h,
      int inter,
      BiFunction<Integer, String, String> name,
      Optional<QuantFormat> f) {
    String gate = b.linear(x, name.apply(layer, "gate_proj"), inter, h, f);
    String up = b.linear(x, name.apply(layer, "up_proj"), inter, h, f);
    return b.linear(b.mul(b.silu(gate), up), name.apply(layer, "down_proj"), h, inter, f);
  }

  /** {@code x} rounded to the KV dtype and widened back to fp32 (nothing for fp32). */
  private static String roundTo(GraphBuilder b, KvDtype kvDtype, String x) {
    return switch (kvDtype) {
      case FP32 -> x;
      case FP16 -> b.cast(b.cast(x, DType.FLOAT16), DType.FLOAT);
      case BF16 -> b.cast(b.cast(x, DType.BFLOAT16), DType.FLOAT);
    };
  }

  /**
   * The fp32 gate of one group: {idx, weights}. Top-k by p + bias, weights = chosen p renormalised.
   */
  private static String[] route(GraphBuilder b, ModelConfig cfg, int layer, int group, String hn) {
    ExpertGroup eg = cfg.expertGroups().get(group);
    String logits =
        b.linear(hn, b.weight(WeightNames.gate(layer, group), eg.numExperts(), cfg.hidden()));
    String p = b.softmax(logits, -1);
    // The group's row of the [groups, experts] bias, as its own weight: an op on a weight alone
    // would be constant-folded before the session binds the weight's data.
    String row = b.weight(WeightNames.correctionBiasRow(layer, group), eg.numExperts());
    String[] top = b.topK(b.add(p, row), cfg.topK());
    String chosen = b.gatherElements(p, top[1], 1);
    String sum = b.max(b.sumColumns(chosen, cfg.topK()), b.constScalar((float) cfg.moeNormMin()));
    return new String[] {top[1], b.div(chosen, sum)};
  }

  /**
   * Interleaved rotary embedding on {@code [M, heads·hd]} rows: pairs (2i, 2i+1) rotate together.
   */
  private static String rope(GraphBuilder b, String x, int heads, int hd, String cos, String sin) {
    String pairs = b.reshape(x, -1, heads, hd / 2, 2);
    String a = b.slice(pairs, 0, 1, 3);
    String c = b.slice(pairs, 1, 2, 3);
    String cos4 = b.reshape(cos, -1, 1, hd / 2, 1);
    String sin4 = b.reshape(sin, -1, 1, hd / 2, 1);
    String outA = b.sub(b.mul(a, cos4), b.mul(c, sin4));
    String outB = b.add(b.mul(c, cos4), b.mul(a, sin4));
    return b.reshape(b.concat(3, outA, outB), -1, heads * hd);
  }
}
