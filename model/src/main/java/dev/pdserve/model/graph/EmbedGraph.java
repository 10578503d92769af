package dev.pdserve.model.graph;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.onnx.DType;
import dev.pdserve.model.onnx.GraphBuilder;
import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.WeightQuantization;
import dev.pdserve.model.weights.WeightNames;
import java.util.Optional;

/**
 * Token ids {@code [n]} (int64) to embedding rows {@code [n, H]}: an fp32 Gather, or in a quantized
 * mode a {@code com.microsoft.GatherBlockQuantized} over the table's codes ({@link
 * WeightQuantization#embeddingFormat}), each row dequantized in fp32.
 */
public final class EmbedGraph {
  private EmbedGraph() {}

  /** The fp32 lookup. */
  public static GraphBuilder build(ModelConfig cfg) {
    return build(cfg, WeightQuantization.NONE);
  }

  /** The lookup over the table as {@code quant} stores it. */
  public static GraphBuilder build(ModelConfig cfg, WeightQuantization quant) {
    GraphBuilder b = new GraphBuilder("embed");
    String ids = b.input("ids", DType.INT64, "n");
    Optional<QuantFormat> f = quant.embeddingFormat(cfg);
    String rows =
        f.isPresent()
            ? b.quantGather(ids, WeightNames.EMBED, cfg.vocabSize(), cfg.hidden(), f.get())
            : b.gather(b.weight(WeightNames.EMBED, cfg.vocabSize(), cfg.hidden()), ids, 0);
    b.output(rows, "rows", DType.FLOAT, "n", (long) cfg.hidden());
    return b;
  }
}
