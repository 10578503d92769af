package dev.pdserve.model.graph;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.VisionConfig;
import dev.pdserve.model.onnx.DType;
import dev.pdserve.model.onnx.GraphBuilder;
import dev.pdserve.model.weights.VisionWeightNames;
import java.util.Arrays;

/**
 * The resampler that turns one image's ViT features into language-model rows:
 *
 * <pre>
 * input    features [n, width]      in merge-window order, n a multiple of merge²
 * output   rows [n / merge², hidden]
 * </pre>
 *
 * Every merge² consecutive patches are concatenated ({@code [n/4, 4·width]}), then the spatial MLP
 * (Linear, exact GELU, Linear, LayerNorm), the temporal MLP on {@code temporal_merge} copies of
 * each row (a still image is its own every frame: {@code [x, x]}; Linear, GELU, Linear, LayerNorm),
 * a Linear to the language model's width and its RMSNorm.
 */
public final class ResamplerGraph {
  private ResamplerGraph() {}

  public static GraphBuilder build(ModelConfig cfg) {
    VisionConfig v =
        cfg.vision()
            .orElseThrow(() -> new IllegalArgumentException(cfg.name() + " has no vision config"));
    long merged = v.mergedWidth();
    GraphBuilder b = new GraphBuilder("resampler");
    String features = b.input("features", DType.FLOAT, "n", (long) v.width());
    String x = b.reshape(features, -1, merged);
    x =
        mlp(
            b,
            x,
            VisionWeightNames.RESAMPLER + "spatial_linear.",
            merged,
            merged,
            v.layerNormEps());
    if (v.temporalMlp()) {
      String[] copies = new String[v.temporalMerge()];
      Arrays.fill(copies, x);
      String frames = v.temporalMerge() == 1 ? x : b.concat(1, copies);
      x =
          mlp(
              b,
              frames,
              VisionWeightNames.RESAMPLER + "temporal_linear.",
              v.temporalWidth(),
              merged,
              v.layerNormEps());
    }
    String out =
        b.linear(
            x,
            b.weight(VisionWeightNames.RESAMPLER_OUT + "weight", cfg.hidden(), merged),
            b.weight(VisionWeightNames.RESAMPLER_OUT + "bias", cfg.hidden()));
    String rows =
        b.rmsNorm(out, b.weight(VisionWeightNames.RESAMPLER_NORM, cfg.hidden()), cfg.rmsNormEps());
    b.output(rows, "rows", DType.FLOAT, "m", (long) cfg.hidden());
    return b;
  }

  private static String mlp(
      GraphBuilder b, String x, String prefix, long in, long out, double eps) {
    String h =
        b.gelu(
            b.linear(x, b.weight(prefix + "0.weight", out, in), b.weight(prefix + "0.bias", out)));
    h = b.linear(h, b.weight(prefix + "2.weight", out, out), b.weight(prefix + "2.bias", out));
    return b.layerNorm(
        h, b.weight(prefix + "3.weight", out), b.weight(prefix + "3.bias", out), eps);
  }
}
