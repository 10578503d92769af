package dev.pdserve.model.graph;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.onnx.DType;
import dev.pdserve.model.onnx.GraphBuilder;
import dev.pdserve.model.quant.WeightComponent;
import dev.pdserve.model.quant.WeightQuantization;
import dev.pdserve.model.weights.WeightNames;

/**
 * Final RMSNorm and LM head (the embedding matrix when embeddings are tied): {@code [m, H] → [m,
 * V]}.
 */
public final class HeadGraph {
  private HeadGraph() {}

  public static GraphBuilder build(ModelConfig cfg) {
    return build(cfg, WeightQuantization.NONE);
  }

  /** The head with its projection in the format {@code quant} gives the LM head. */
  public static GraphBuilder build(ModelConfig cfg, WeightQuantization quant) {
    GraphBuilder b = new GraphBuilder("head");
    String h = b.input("h", DType.FLOAT, "m", (long) cfg.hidden());
    String norm = b.rmsNorm(h, b.weight(WeightNames.FINAL_NORM, cfg.hidden()), cfg.rmsNormEps());
    String logits =
        b.linear(
            norm,
            cfg.tieEmbeddings() ? WeightNames.EMBED : WeightNames.LM_HEAD,
            cfg.vocabSize(),
            cfg.hidden(),
            quant.format(cfg, -1, WeightComponent.LM_HEAD));
    b.output(logits, "logits", DType.FLOAT, "m", (long) cfg.vocabSize());
    return b;
  }
}
