package dev.pdserve.model.config;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The shape of an ERNIE-4.5 (VL) MoE language model. Every size the engine uses comes from here;
 * nothing is a constant in code. Built from a preset ({@link ModelPresets}) or an ERNIE {@code
 * config.json} ({@link ModelConfigJson}).
 */
public record ModelConfig(
    String name,
    int vocabSize,
    int hidden,
    int numLayers,
    int numHeads,
    int numKvHeads,
    int headDim,
    int denseIntermediate,
    double rmsNormEps,
    double ropeTheta,
    int maxPositions,
    boolean tieEmbeddings,
    List<LayerKind> layerKinds,
    List<ExpertGroup> expertGroups,
    int topK,
    int numSharedExperts,
    double moeNormMin,
    int bosId,
    int eosId,
    int padId,
    int freqAllocation,
    Optional<VisionConfig> vision) {

  public ModelConfig {
    layerKinds = List.copyOf(layerKinds);
    expertGroups = List.copyOf(expertGroups);
    require(vocabSize > 0, "vocab_size", "must be > 0, got " + vocabSize);
    require(hidden > 0, "hidden_size", "must be > 0, got " + hidden);
    require(numLayers > 0, "num_hidden_layers", "must be > 0, got " + numLayers);
    require(numHeads > 0, "num_attention_heads", "must be > 0, got " + numHeads);
    require(
        numKvHeads > 0 && numHeads % numKvHeads == 0,
        "num_key_value_heads",
        "must divide num_attention_heads (" + numHeads + "), got " + numKvHeads);
    require(headDim > 0 && headDim % 2 == 0, "head_dim", "must be even and > 0, got " + headDim);
    require(
        layerKinds.size() == numLayers,
        "mlp_layer_types",
        "needs one entry per layer (" + numLayers + "), got " + layerKinds.size());
    require(rmsNormEps > 0, "rms_norm_eps", "must be > 0, got " + rmsNormEps);
    require(ropeTheta > 0, "rope_theta", "must be > 0, got " + ropeTheta);
    require(maxPositions > 1, "max_position_embeddings", "must be > 1, got " + maxPositions);
    boolean anyMoe = layerKinds.contains(LayerKind.MOE);
    if (anyMoe) {
      require(
          !expertGroups.isEmpty(), "moe_num_experts", "MoE layers need at least one expert group");
      for (ExpertGroup g : expertGroups) {
        require(
            g.numExperts() > 0, "moe_num_experts", "group " + g.name() + " must have > 0 experts");
        require(
            g.intermediate() > 0, "moe_intermediate_size", "group " + g.name() + " must be > 0");
        require(
            topK >= 1 && topK <= g.numExperts(),
            "moe_k",
            "must be in [1, " + g.numExperts() + "], got " + topK);
      }
      require(
          numSharedExperts >= 0, "moe_num_shared_experts", "must be >= 0, got " + numSharedExperts);
    }
    require(bosId >= 0 && bosId < vocabSize, "bos_token_id", "must be a token id, got " + bosId);
    require(eosId >= 0 && eosId < vocabSize, "eos_token_id", "must be a token id, got " + eosId);
    vision = vision == null ? Optional.empty() : vision;
    if (vision.isPresent()) {
      int half = headDim / 2;
      require(
          freqAllocation >= 0 && freqAllocation <= half && (half - freqAllocation) % 2 == 0,
          "freq_allocation",
          "must leave an even number of the "
              + half
              + " rotary pairs of a head for height and width, got "
              + freqAllocation);
      vision.get().tokens().validate(vocabSize);
    }
  }

  /** The same model with another vision side (for example with its image token ids resolved). */
  public ModelConfig withVision(Optional<VisionConfig> other) {
    return new ModelConfig(
        name,
        vocabSize,
        hidden,
        numLayers,
        numHeads,
        numKvHeads,
        headDim,
        denseIntermediate,
        rmsNormEps,
        ropeTheta,
        maxPositions,
        tieEmbeddings,
        layerKinds,
        expertGroups,
        topK,
        numSharedExperts,
        moeNormMin,
        bosId,
        eosId,
        padId,
        freqAllocation,
        other);
  }

  private static void require(boolean ok, String key, String msg) {
    if (!ok) {
      throw new ConfigException(key + ": " + msg);
    }
  }

  public int queryGroup() {
    return numHeads / numKvHeads;
  }

  public LayerKind layerKind(int layer) {
    return layerKinds.get(layer);
  }

  /** Expert groups present in the MoE block of {@code layer} (empty for dense layers). */
  public List<Integer> groupsInLayer(int layer) {
    List<Integer> out = new ArrayList<>();
    if (layerKind(layer) != LayerKind.MOE) {
      return out;
    }
    for (int g = 0; g < expertGroups.size(); g++) {
      if (expertGroups.get(g).inLayer(layer)) {
        out.add(g);
      }
    }
    return out;
  }

  public boolean hasVisionExperts() {
    return expertGroups.size() > ExpertGroup.VISION;
  }

  /** Intermediate width of the fused shared-expert MLP ({@code moe_intermediate_size[0] × n}). */
  public int sharedIntermediate() {
    return expertGroups.isEmpty() ? 0 : expertGroups.get(0).intermediate() * numSharedExperts;
  }

  /** KV cache bytes per token for the given element size (2 × layers × kv_heads × head_dim). */
  public long kvBytesPerToken(int elementBytes) {
    return 2L * numLayers * numKvHeads * headDim * elementBytes;
  }

  // ---- parameter counts ----

  public long attentionParams() {
    long q = (long) hidden * numHeads * headDim;
    long kv = 2L * hidden * numKvHeads * headDim;
    long o = (long) numHeads * headDim * hidden;
    return q + kv + o + 2L * hidden;
  }

  public long layerParams(int layer) {
    long p = attentionParams();
    if (layerKind(layer) == LayerKind.DENSE) {
      return p + 3L * hidden * denseIntermediate;
    }
    for (int g : groupsInLayer(layer)) {
      ExpertGroup eg = expertGroups.get(g);
      p += (long) eg.numExperts() * hidden + eg.numExperts(); // gate + correction bias
      p += (long) eg.numExperts() * 3L * hidden * eg.intermediate();
    }
    return p + 3L * hidden * sharedIntermediate();
  }

  /** Language-model parameters (embeddings, every layer, final norm, LM head if untied). */
  public long totalParams() {
    long p = (long) vocabSize * hidden + hidden;
    if (!tieEmbeddings) {
      p += (long) vocabSize * hidden;
    }
    for (int l = 0; l < numLayers; l++) {
      p += layerParams(l);
    }
    return p;
  }

  /**
   * Parameters one text token touches (attention, dense MLPs, top-k of the text experts, shared
   * experts, LM head).
   */
  public long activeParams() {
    long p = (long) vocabSize * hidden + hidden; // embedding row + LM head (tied: the same matrix)
    for (int l = 0; l < numLayers; l++) {
      p += attentionParams();
      if (layerKind(l) == LayerKind.DENSE) {
        p += 3L * hidden * denseIntermediate;
      } else {
        ExpertGroup text = expertGroups.get(ExpertGroup.TEXT);
        p += (long) text.numExperts() * hidden;
        p += (long) topK * 3L * hidden * text.intermediate();
        p += 3L * hidden * sharedIntermediate();
      }
    }
    return p;
  }
}
