package dev.pdserve.model.weights;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.graph.EmbedGraph;
import dev.pdserve.model.graph.ExpertGraph;
import dev.pdserve.model.graph.HeadGraph;
import dev.pdserve.model.graph.LayerGraph;
import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.QuantNames;
import dev.pdserve.model.quant.WeightComponent;
import dev.pdserve.model.quant.WeightQuantization;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The converter stores exactly the matrices the engine's graphs ask quantized, in their formats:
 * {@link QuantizedLayout#formats} equals what the embedding, layer and head graphs declare plus the
 * routed experts ExpertCompute quantizes, for the tiny VL preset and a text-only, untied shape,
 * with the embeddings quantized and kept fp32.
 */
class QuantizedLayoutTest {
  @ParameterizedTest
  @EnumSource(QuantMode.class)
  void formatsAreWhatTheGraphsQuantize(QuantMode mode) {
    ModelConfig tiny = ModelPresets.get("tiny");
    for (ModelConfig cfg :
        new ModelConfig[] {tiny, TestCheckpoints.untied(TestCheckpoints.textOnly(tiny))}) {
      for (boolean embeddings : new boolean[] {true, false}) {
        check(cfg, new WeightQuantization(mode, 32).withQuantizedEmbeddings(embeddings));
      }
    }
  }

  private static void check(ModelConfig cfg, WeightQuantization q) {
    {
      Map<String, String> fromGraphs = new TreeMap<>();
      for (int l = 0; l < cfg.numLayers(); l++) {
        collect(LayerGraph.build(cfg, l, KvDtype.FP32, q).weights(), fromGraphs);
        if (cfg.layerKind(l) == LayerKind.MOE) {
          int layer = l;
          q.format(cfg, l, WeightComponent.ROUTED_EXPERTS)
              .ifPresent(
                  f -> {
                    for (int g : cfg.groupsInLayer(layer)) {
                      ExpertGroup eg = cfg.expertGroups().get(g);
                      for (int e = 0; e < eg.numExperts(); e++) {
                        for (String p : ExpertGraph.PROJECTIONS) {
                          fromGraphs.put(
                              WeightNames.expert(cfg, layer, g, e, p + "_proj"), f.tag());
                        }
                      }
                    }
                  });
        }
      }
      collect(HeadGraph.build(cfg, q).weights(), fromGraphs);
      collect(EmbedGraph.build(cfg, q).weights(), fromGraphs);
      Map<String, String> layout = new TreeMap<>();
      QuantizedLayout.formats(cfg, q).forEach((name, f) -> layout.put(name, f.tag()));
      assertEquals(fromGraphs, layout, cfg.name() + " " + q.describe());
    }
  }

  /** A tied or untied table: stored only quantized unless the embeddings are kept fp32. */
  @ParameterizedTest
  @EnumSource(
      value = QuantMode.class,
      names = {"INT8", "INT4", "INT2_MIXED"})
  void theEmbeddingTableNeedsFp32OnlyWhenItIsGatheredInFp32(QuantMode mode) {
    ModelConfig tiny = ModelPresets.get("tiny");
    for (ModelConfig cfg : new ModelConfig[] {tiny, TestCheckpoints.untied(tiny)}) {
      WeightQuantization on = WeightQuantization.of(mode);
      WeightQuantization off = on.withQuantizedEmbeddings(false);
      Map<String, QuantFormat> withTable = QuantizedLayout.formats(cfg, on);
      assertEquals(
          on.format(cfg, -1, WeightComponent.LM_HEAD).orElseThrow(),
          withTable.get(WeightNames.EMBED),
          cfg.name() + ": the table is in the LM head's format");
      assertEquals(false, QuantizedLayout.needsFp32(WeightNames.EMBED, withTable, on));
      assertEquals(
          true,
          QuantizedLayout.needsFp32(WeightNames.EMBED, QuantizedLayout.formats(cfg, off), off),
          cfg.name());
      assertEquals(
          cfg.tieEmbeddings(),
          QuantizedLayout.formats(cfg, off).containsKey(WeightNames.EMBED),
          cfg.name() + ": with fp32 embeddings only a tied table is quantized (as the LM head)");
    }
  }

  private static void collect(Map<String, long[]> weights, Map<String, String> out) {
    for (String w : weights.keySet()) {
      QuantNames.parse(w)
          .ifPresent(
              p -> {
                QuantFormat f = p.format();
                out.put(p.base(), f.tag());
              });
    }
  }
}
