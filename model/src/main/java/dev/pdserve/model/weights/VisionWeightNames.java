package dev.pdserve.model.weights;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.VisionConfig;
import java.util.List;
import java.util.Map;

/**
 * Tensor names and shapes of the vision encoder and the resampler, as the ERNIE-4.5-VL PT release
 * stores them: the ViT under {@code vision_model.} (patch embedding {@code patch_embed.proj},
 * blocks with {@code norm1}, {@code attn.qkv} (q, k, v stacked on the output axis), {@code
 * attn.proj}, {@code norm2}, {@code mlp.fc1}, {@code mlp.fc2}, a final {@code ln}), the resampler
 * under {@code model.resampler_model.} (its two MLPs are sequentials, so their layers are {@code
 * .0} Linear, {@code .2} Linear, {@code .3} LayerNorm; then {@code mlp} and the RMSNorm {@code
 * after_norm}). Linear weights are {@code [out, in]}. Checkpoints converted by transformers' port
 * with a nested config store the ViT under {@code model.vision_model.} instead ({@link
 * #storedAliases}).
 */
public final class VisionWeightNames {
  public static final String TOWER = "vision_model.";
  public static final String RESAMPLER = "model.resampler_model.";

  /** The prefix some converted checkpoints store the ViT under. */
  static final String NESTED_TOWER = "model.vision_model.";

  public static final String PATCH_EMBED = TOWER + "patch_embed.proj.weight";
  public static final String FINAL_NORM = TOWER + "ln.";

  private VisionWeightNames() {}

  /** Prefix of ViT block {@code b}'s tensors. */
  public static String block(int b) {
    return TOWER + "blocks." + b + ".";
  }

  /** Spatial MLP layer: 0 first Linear, 2 second Linear, 3 LayerNorm. */
  public static String spatial(int layer) {
    return RESAMPLER + "spatial_linear." + layer + ".";
  }

  /** Temporal MLP layer: 0 first Linear, 2 second Linear, 3 LayerNorm. */
  public static String temporal(int layer) {
    return RESAMPLER + "temporal_linear." + layer + ".";
  }

  public static final String RESAMPLER_OUT = RESAMPLER + "mlp.";
  public static final String RESAMPLER_NORM = RESAMPLER + "after_norm.weight";

  /** Adds every vision tensor of {@code cfg} (none without a vision config) with its shape. */
  static void addExpected(ModelConfig cfg, Map<String, long[]> m) {
    if (cfg.vision().isEmpty()) {
      return;
    }
    VisionConfig v = cfg.vision().get();
    long w = v.width();
    long mlp = v.mlpWidth();
    m.put(PATCH_EMBED, new long[] {w, v.patchValues()});
    for (int b = 0; b < v.depth(); b++) {
      String p = block(b);
      m.put(p + "norm1.weight", new long[] {w});
      m.put(p + "norm1.bias", new long[] {w});
      m.put(p + "attn.qkv.weight", new long[] {3 * w, w});
      m.put(p + "attn.qkv.bias", new long[] {3 * w});
      m.put(p + "attn.proj.weight", new long[] {w, w});
      m.put(p + "attn.proj.bias", new long[] {w});
      m.put(p + "norm2.weight", new long[] {w});
      m.put(p + "norm2.bias", new long[] {w});
      m.put(p + "mlp.fc1.weight", new long[] {mlp, w});
      m.put(p + "mlp.fc1.bias", new long[] {mlp});
      m.put(p + "mlp.fc2.weight", new long[] {w, mlp});
      m.put(p + "mlp.fc2.bias", new long[] {w});
    }
    m.put(FINAL_NORM + "weight", new long[] {w});
    m.put(FINAL_NORM + "bias", new long[] {w});
    long merged = v.mergedWidth();
    putMlp(m, RESAMPLER + "spatial_linear.", merged, merged);
    if (v.temporalMlp()) {
      putMlp(m, RESAMPLER + "temporal_linear.", v.temporalWidth(), merged);
    }
    m.put(RESAMPLER_OUT + "weight", new long[] {cfg.hidden(), merged});
    m.put(RESAMPLER_OUT + "bias", new long[] {cfg.hidden()});
    m.put(RESAMPLER_NORM, new long[] {cfg.hidden()});
  }

  private static void putMlp(Map<String, long[]> m, String prefix, long in, long out) {
    m.put(prefix + "0.weight", new long[] {out, in});
    m.put(prefix + "0.bias", new long[] {out});
    m.put(prefix + "2.weight", new long[] {out, out});
    m.put(prefix + "2.bias", new long[] {out});
    m.put(prefix + "3.weight", new long[] {out});
    m.put(prefix + "3.bias", new long[] {out});
  }

  /** Whether {@code name} is a vision encoder or resampler tensor. */
  public static boolean isVision(String name) {
    return name.startsWith(TOWER) || name.startsWith(RESAMPLER);
  }

  /** Whether {@code name} is the scale of a LayerNorm or RMSNorm of the vision side. */
  public static boolean isNormScale(String name) {
    return isVision(name)
        && (name.endsWith("norm1.weight")
            || name.endsWith("norm2.weight")
            || name.equals(FINAL_NORM + "weight")
            || name.endsWith("_linear.3.weight")
            || name.equals(RESAMPLER_NORM));
  }

  /** Other names a checkpoint may store the canonical tensor {@code name} under. */
  static List<String> storedAliases(String name) {
    if (name.startsWith(TOWER)) {
      return List.of(NESTED_TOWER + name.substring(TOWER.length()));
    }
    return List.of();
  }
}
