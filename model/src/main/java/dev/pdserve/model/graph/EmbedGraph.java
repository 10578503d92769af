package dev.pdserve.model.graph;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.onnx.DType;
import dev.pdserve.model.onnx.GraphBuilder;
import dev.pdserve.model.weights.WeightNames;

/** Token ids {@code [n]} (int64) to embedding rows {@code [n, H]}. */
public final class EmbedGraph {
  private EmbedGraph() {}

  public static GraphBuilder build(ModelConfig cfg) {
    GraphBuilder b = new GraphBuilder("embed");
    String ids = b.input("ids", DType.INT64, "n");
    String table = b.weight(WeightNames.EMBED, cfg.vocabSize(), cfg.hidden());
    b.output(b.gather(table, ids, 0), "rows", DType.FLOAT, "n", (long) cfg.hidden());
    return b;
  }
}
