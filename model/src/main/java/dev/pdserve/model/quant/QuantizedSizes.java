package dev.pdserve.model.quant;

import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import java.util.EnumMap;
import java.util.Map;

/**
 * Bytes of the language model's linear weights and its embedding table per {@link WeightComponent}
 * under a {@link WeightQuantization} (codes, scales and zero points; fp32 where a component is not
 * quantized). Norms and gates (always fp32) are not included. With tied embeddings the table is
 * counted once, under {@link WeightComponent#EMBEDDINGS}, when the lookup and the LM head read the
 * same bytes (fp32 in mode none, the same codes when the embeddings are quantized); with the
 * embeddings fp32 beside a quantized head, the head is its own copy.
 */
public final class QuantizedSizes {
  private QuantizedSizes() {}

  /** Bytes per component of {@code cfg} in {@code q}. */
  public static Map<WeightComponent, Long> byComponent(ModelConfig cfg, WeightQuantization q) {
    Map<WeightComponent, Long> m = new EnumMap<>(WeightComponent.class);
    for (WeightComponent c : WeightComponent.values()) {
      m.put(c, 0L);
    }
    long h = cfg.hidden();
    long qd = (long) cfg.numHeads() * cfg.headDim();
    long kvd = (long) cfg.numKvHeads() * cfg.headDim();
    for (int l = 0; l < cfg.numLayers(); l++) {
      WeightComponent a = WeightComponent.ATTENTION;
      add(
          m,
          a,
          q.bytes(cfg, l, a, h, qd) + 2 * q.bytes(cfg, l, a, h, kvd) + q.bytes(cfg, l, a, qd, h));
      if (cfg.layerKind(l) == LayerKind.DENSE) {
        add(
            m,
            WeightComponent.DENSE_MLP,
            swiglu(cfg, q, l, WeightComponent.DENSE_MLP, h, cfg.denseIntermediate()));
      } else {
        if (cfg.numSharedExperts() > 0) {
          add(
              m,
              WeightComponent.SHARED_EXPERTS,
              swiglu(cfg, q, l, WeightComponent.SHARED_EXPERTS, h, cfg.sharedIntermediate()));
        }
        for (int g : cfg.groupsInLayer(l)) {
          ExpertGroup eg = cfg.expertGroups().get(g);
          add(
              m,
              WeightComponent.ROUTED_EXPERTS,
              eg.numExperts()
                  * swiglu(cfg, q, l, WeightComponent.ROUTED_EXPERTS, h, eg.intermediate()));
        }
      }
    }
    long v = cfg.vocabSize();
    long table = q.bytes(cfg, -1, WeightComponent.EMBEDDINGS, h, v);
    long head = q.bytes(cfg, -1, WeightComponent.LM_HEAD, h, v);
    add(m, WeightComponent.EMBEDDINGS, table);
    boolean shared =
        cfg.tieEmbeddings()
            && q.bits(cfg, -1, WeightComponent.EMBEDDINGS)
                == q.bits(cfg, -1, WeightComponent.LM_HEAD);
    add(m, WeightComponent.LM_HEAD, shared ? 0 : head);
    return m;
  }

  /** Sum over every component. */
  public static long total(ModelConfig cfg, WeightQuantization q) {
    return byComponent(cfg, q).values().stream().mapToLong(Long::longValue).sum();
  }

  /** Gate, up ({@code [inter, h]}) and down ({@code [h, inter]}) of one SwiGLU MLP. */
  private static long swiglu(
      ModelConfig cfg, WeightQuantization q, int layer, WeightComponent c, long h, long inter) {
    return 2 * q.bytes(cfg, layer, c, h, inter) + q.bytes(cfg, layer, c, inter, h);
  }

  private static void add(Map<WeightComponent, Long> m, WeightComponent c, long bytes) {
    m.merge(c, bytes, Long::sum);
  }
}
