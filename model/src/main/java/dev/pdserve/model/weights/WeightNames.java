package dev.pdserve.model.weights;

import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Canonical tensor names and shapes. Names follow the published ERNIE-4.5 PT checkpoints: routed
 * experts of the vision group follow the text experts in one index range ({@code experts.64..127}
 * for 64 + 64), the vision gate is {@code mlp.gate.weight_1}, and the correction bias holds one row
 * per group ({@code [groups, experts]}).
 */
public final class WeightNames {
  private WeightNames() {}

  public static final String EMBED = "model.embed_tokens.weight";
  public static final String FINAL_NORM = "model.norm.weight";
  public static final String LM_HEAD = "lm_head.weight";

  public static String layer(int l) {
    return "model.layers." + l + ".";
  }

  public static String q(int l) {
    return layer(l) + "self_attn.q_proj.weight";
  }

  public static String k(int l) {
    return layer(l) + "self_attn.k_proj.weight";
  }

  public static String v(int l) {
    return layer(l) + "self_attn.v_proj.weight";
  }

  public static String o(int l) {
    return layer(l) + "self_attn.o_proj.weight";
  }

  public static String inputNorm(int l) {
    return layer(l) + "input_layernorm.weight";
  }

  public static String postNorm(int l) {
    return layer(l) + "post_attention_layernorm.weight";
  }

  /** Dense MLP projection: {@code proj} is "gate_proj", "up_proj" or "down_proj". */
  public static String denseMlp(int l, String proj) {
    return layer(l) + "mlp." + proj + ".weight";
  }

  public static String sharedExpert(int l, String proj) {
    return layer(l) + "mlp.shared_experts." + proj + ".weight";
  }

  /**
   * Gate of expert group {@code g}: {@code mlp.gate.weight} for text, {@code mlp.gate.weight_1} for
   * vision.
   */
  public static String gate(int l, int g) {
    return layer(l) + "mlp.gate.weight" + (g == 0 ? "" : "_" + g);
  }

  public static String correctionBias(int l) {
    return layer(l) + "mlp.moe_statics.e_score_correction_bias";
  }

  /**
   * Row {@code g} of the correction bias, {@code [experts of g]}: a view the engine derives from
   * {@link #correctionBias}, not a checkpoint tensor.
   */
  public static String correctionBiasRow(int l, int g) {
    return correctionBias(l) + ROW + g;
  }

  /** Separator of a derived row view's name: {@code base + ROW + rowIndex}. */
  public static final String ROW = "#row";

  /** Checkpoint index of expert {@code e} of group {@code g} (groups are laid end to end). */
  public static int checkpointExpertIndex(ModelConfig cfg, int g, int e) {
    int offset = 0;
    for (int i = 0; i < g; i++) {
      offset += cfg.expertGroups().get(i).numExperts();
    }
    return offset + e;
  }

  public static String expert(ModelConfig cfg, int l, int g, int e, String proj) {
    return layer(l) + "mlp.experts." + checkpointExpertIndex(cfg, g, e) + "." + proj + ".weight";
  }

  /**
   * Every tensor the engine needs for {@code cfg}, with its expected shape, in a stable order: the
   * language model's, then a VL model's vision encoder and resampler ({@link VisionWeightNames}).
   */
  public static Map<String, long[]> expected(ModelConfig cfg) {
    Map<String, long[]> m = new LinkedHashMap<>();
    int h = cfg.hidden();
    int qd = cfg.numHeads() * cfg.headDim();
    int kvd = cfg.numKvHeads() * cfg.headDim();
    m.put(EMBED, new long[] {cfg.vocabSize(), h});
    for (int l = 0; l < cfg.numLayers(); l++) {
      m.put(inputNorm(l), new long[] {h});
      m.put(q(l), new long[] {qd, h});
      m.put(k(l), new long[] {kvd, h});
      m.put(v(l), new long[] {kvd, h});
      m.put(o(l), new long[] {h, qd});
      m.put(postNorm(l), new long[] {h});
      if (cfg.layerKind(l) == LayerKind.DENSE) {
        int i = cfg.denseIntermediate();
        m.put(denseMlp(l, "gate_proj"), new long[] {i, h});
        m.put(denseMlp(l, "up_proj"), new long[] {i, h});
        m.put(denseMlp(l, "down_proj"), new long[] {h, i});
      } else {
        int groups = cfg.expertGroups().size();
        int maxExperts = 0;
        for (int g : cfg.groupsInLayer(l)) {
          ExpertGroup eg = cfg.expertGroups().get(g);
          maxExperts = Math.max(maxExperts, eg.numExperts());
          m.put(gate(l, g), new long[] {eg.numExperts(), h});
          for (int e = 0; e < eg.numExperts(); e++) {
            m.put(expert(cfg, l, g, e, "gate_proj"), new long[] {eg.intermediate(), h});
            m.put(expert(cfg, l, g, e, "up_proj"), new long[] {eg.intermediate(), h});
            m.put(expert(cfg, l, g, e, "down_proj"), new long[] {h, eg.intermediate()});
          }
        }
        m.put(correctionBias(l), new long[] {groups, maxExperts});
        if (cfg.numSharedExperts() > 0) {
          int si = cfg.sharedIntermediate();
          m.put(sharedExpert(l, "gate_proj"), new long[] {si, h});
          m.put(sharedExpert(l, "up_proj"), new long[] {si, h});
          m.put(sharedExpert(l, "down_proj"), new long[] {h, si});
        }
      }
    }
    m.put(FINAL_NORM, new long[] {h});
    if (!cfg.tieEmbeddings()) {
      m.put(LM_HEAD, new long[] {cfg.vocabSize(), h});
    }
    VisionWeightNames.addExpected(cfg, m);
    return m;
  }
}
