package dev.pdserve.model.weights;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.ImageTokenIds;
import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelConfigJson;
import dev.pdserve.model.config.VisionConfig;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.function.Supplier;
import java.util.function.ToIntFunction;

/**
 * Writes model directories the way the published ERNIE-4.5 releases lay them out, from any weight
 * source: an ERNIE {@code config.json}, safetensors weights in F32, BF16 or F16, optionally sharded
 * with an index, VL gates stored {@code [hidden, experts]}, text-only correction biases stored
 * flat, and a few tensors the engine must ignore (vision encoder, resampler, MTP, a tied LM head).
 * Files laid out against the release convention carry {@link CheckpointWeights#GATE_LAYOUT_KEY}
 * metadata, since square gates (the {@code tiny} preset's 64 × 64) cannot show their layout by
 * shape.
 *
 * <pre>{@code
 * ModelConfig cfg = ModelPresets.get("tiny");
 * Path dir = TestCheckpoints.write(tmp, cfg, new DummyWeights(cfg, 7), Layout.released(cfg, SafetensorsDType.BF16));
 * try (ModelDirectory model = ModelDirectory.open(dir)) { ... }
 * }</pre>
 */
public final class TestCheckpoints {
  /** Extra tensors {@link Layout#extras()} adds; the engine must ignore every one. */
  public static final List<String> EXTRA_NAMES =
      List.of(
          "vision_model.patch_embed.weight",
          "resampler_model.spatial_linear.0.weight",
          "mtp_emb_norm.0.weight");

  private static final ObjectMapper MAPPER =
      new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  private TestCheckpoints() {}

  /**
   * How the checkpoint is stored.
   *
   * @param dtype F32, BF16 or F16
   * @param shards 1 for {@code model.safetensors}; more for {@code
   *     model-0000K-of-0000N.safetensors} files plus {@code model.safetensors.index.json}
   * @param transposedGates store every gate {@code [hidden, experts]} (as the VL release does)
   * @param flatBias store every correction bias flat, {@code [groups × experts]} (as text-only
   *     releases do)
   * @param extras add {@link #EXTRA_NAMES} (one holding NaNs) and, with tied embeddings, an {@code
   *     lm_head.weight}
   */
  public record Layout(
      SafetensorsDType dtype,
      int shards,
      boolean transposedGates,
      boolean flatBias,
      boolean extras) {
    public Layout {
      if (!dtype.writableFromFloat()) {
        throw new IllegalArgumentException(
            "checkpoints are written as F32, BF16 or F16, not " + dtype);
      }
      if (shards < 1) {
        throw new IllegalArgumentException("shards must be >= 1, got " + shards);
      }
    }

    /**
     * The layout of the published release for {@code cfg}'s kind (VL or text-only), in one file.
     */
    public static Layout released(ModelConfig cfg, SafetensorsDType dtype) {
      boolean vl = cfg.hasVisionExperts();
      return new Layout(dtype, 1, vl, !vl, true);
    }

    /** The engine's own layout: canonical shapes, nothing extra, in one file. */
    public static Layout canonical(SafetensorsDType dtype) {
      return new Layout(dtype, 1, false, false, false);
    }

    public Layout withShards(int n) {
      return new Layout(dtype, n, transposedGates, flatBias, extras);
    }

    public Layout withExtras(boolean add) {
      return new Layout(dtype, shards, transposedGates, flatBias, add);
    }
  }

  /**
   * Writes {@code config.json} and the weights of every tensor {@code cfg} needs, taken from {@code
   * src}, into {@code dir} (created if absent) and returns {@code dir}.
   */
  public static Path write(Path dir, ModelConfig cfg, WeightSource src, Layout layout) {
    try {
      Files.createDirectories(dir);
      Files.writeString(dir.resolve(ModelDirectory.CONFIG_FILE), configJson(cfg));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    Map<String, long[]> expected = WeightNames.expected(cfg);
    List<Stored> tensors = new ArrayList<>();
    for (Map.Entry<String, long[]> e : expected.entrySet()) {
      tensors.add(stored(cfg, src, e.getKey(), e.getValue(), layout));
    }
    if (layout.extras()) {
      tensors.addAll(extras(cfg));
    }
    Map<String, String> meta = new TreeMap<>(Map.of("format", "pt"));
    if (layout.transposedGates() != cfg.hasVisionExperts()) {
      // Not the release convention: say so, for square gates (hidden = experts) cannot show it.
      meta.put(
          CheckpointWeights.GATE_LAYOUT_KEY,
          layout.transposedGates()
              ? CheckpointWeights.GATES_HIDDEN_EXPERTS
              : CheckpointWeights.GATES_EXPERTS_HIDDEN);
    }
    int shards = Math.min(layout.shards(), tensors.size());
    if (shards == 1) {
      writeFile(dir.resolve(CheckpointWeights.SINGLE_FILE), layout.dtype(), meta, tensors);
      return dir;
    }
    Map<String, String> weightMap = new TreeMap<>();
    long totalBytes = 0;
    int per = (tensors.size() + shards - 1) / shards;
    for (int i = 0; i < shards; i++) {
      String file = String.format("model-%05d-of-%05d.safetensors", i + 1, shards);
      List<Stored> part = tensors.subList(i * per, Math.min(tensors.size(), (i + 1) * per));
      part.forEach(t -> weightMap.put(t.name(), file));
      totalBytes += writeFile(dir.resolve(file), layout.dtype(), meta, part);
    }
    ObjectNode index = MAPPER.createObjectNode();
    index.putObject("metadata").put("total_size", totalBytes);
    ObjectNode map = index.putObject("weight_map");
    weightMap.forEach(map::put);
    try {
      MAPPER.writeValue(dir.resolve(CheckpointWeights.INDEX_FILE).toFile(), index);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return dir;
  }

  /**
   * An ERNIE {@code config.json} for {@code cfg}, using the keys the releases use (expert counts
   * and widths as {@code [text, vision]} lists for VL). It reads back through {@link
   * ModelConfigJson} as exactly {@code cfg}; a config it cannot express fails here.
   */
  public static String configJson(ModelConfig cfg) {
    ObjectNode root = MAPPER.createObjectNode();
    boolean vl = cfg.hasVisionExperts();
    root.putArray("architectures")
        .add(vl ? "Ernie4_5_VLMoeForConditionalGeneration" : "Ernie4_5_MoeForCausalLM");
    root.put("model_type", vl ? "ernie4_5_moe_vl" : "ernie4_5_moe");
    root.put("_name_or_path", cfg.name());
    root.put("hidden_size", cfg.hidden());
    root.put("num_hidden_layers", cfg.numLayers());
    root.put("num_attention_heads", cfg.numHeads());
    root.put("num_key_value_heads", cfg.numKvHeads());
    root.put("head_dim", cfg.headDim());
    root.put("intermediate_size", cfg.denseIntermediate());
    root.put("vocab_size", cfg.vocabSize());
    root.put("rope_theta", cfg.ropeTheta());
    root.put("rms_norm_eps", cfg.rmsNormEps());
    root.put("max_position_embeddings", cfg.maxPositions());
    root.put("tie_word_embeddings", cfg.tieEmbeddings());
    root.put("bos_token_id", cfg.bosId());
    root.put("eos_token_id", cfg.eosId());
    root.put("pad_token_id", cfg.padId());
    root.put("freq_allocation", cfg.freqAllocation());
    root.put("use_bias", false);
    List<ExpertGroup> groups = cfg.expertGroups();
    if (!groups.isEmpty()) {
      putPerGroup(root, "moe_num_experts", groups, ExpertGroup::numExperts);
      putPerGroup(root, "moe_intermediate_size", groups, ExpertGroup::intermediate);
      putPerGroup(root, "moe_layer_start_index", groups, ExpertGroup::firstLayer);
      putPerGroup(root, "moe_layer_end_index", groups, ExpertGroup::lastLayer);
      root.put("moe_layer_interval", 1);
      root.put("moe_k", cfg.topK());
      root.put("moe_num_shared_experts", cfg.numSharedExperts());
      root.put("moe_norm_min", cfg.moeNormMin());
    }
    cfg.vision().ifPresent(v -> putVision(root, v));
    String json = text(root);
    if (!ModelConfigJson.parse(json, "config.json").equals(cfg)) {
      // moe_layer_interval cannot say which layers are MoE: list them.
      ArrayNode types = root.putArray("mlp_layer_types");
      cfg.layerKinds().forEach(k -> types.add(k == LayerKind.MOE ? "sparse" : "dense"));
      json = text(root);
    }
    ModelConfig back = ModelConfigJson.parse(json, "config.json");
    if (!back.equals(cfg)) {
      throw new IllegalArgumentException(
          "config.json cannot express " + cfg + "; it reads back as " + back);
    }
    return json;
  }

  /** {@code cfg} with only its text expert group: the shape of a text-only ERNIE-4.5 MoE model. */
  public static ModelConfig textOnly(ModelConfig cfg) {
    return new ModelConfig(
        cfg.name() + "-text",
        cfg.vocabSize(),
        cfg.hidden(),
        cfg.numLayers(),
        cfg.numHeads(),
        cfg.numKvHeads(),
        cfg.headDim(),
        cfg.denseIntermediate(),
        cfg.rmsNormEps(),
        cfg.ropeTheta(),
        cfg.maxPositions(),
        cfg.tieEmbeddings(),
        cfg.layerKinds(),
        cfg.expertGroups().subList(0, 1),
        cfg.topK(),
        cfg.numSharedExperts(),
        cfg.moeNormMin(),
        cfg.bosId(),
        cfg.eosId(),
        cfg.padId(),
        cfg.freqAllocation(),
        Optional.empty());
  }

  /** {@code cfg} with an LM head of its own ({@code tie_word_embeddings} false). */
  public static ModelConfig untied(ModelConfig cfg) {
    return new ModelConfig(
        cfg.name() + "-untied",
        cfg.vocabSize(),
        cfg.hidden(),
        cfg.numLayers(),
        cfg.numHeads(),
        cfg.numKvHeads(),
        cfg.headDim(),
        cfg.denseIntermediate(),
        cfg.rmsNormEps(),
        cfg.ropeTheta(),
        cfg.maxPositions(),
        false,
        cfg.layerKinds(),
        cfg.expertGroups(),
        cfg.topK(),
        cfg.numSharedExperts(),
        cfg.moeNormMin(),
        cfg.bosId(),
        cfg.eosId(),
        cfg.padId(),
        cfg.freqAllocation(),
        cfg.vision());
  }

  // ---- internals ----

  private record Stored(String name, long[] shape, Supplier<FloatBuffer> data) {}

  private static Stored stored(
      ModelConfig cfg, WeightSource src, String name, long[] shape, Layout layout) {
    Supplier<FloatTensor> tensor =
        () ->
            src.find(name)
                .orElseThrow(
                    () -> new IllegalArgumentException(src.describe() + " has no tensor " + name));
    boolean gate = name.contains(".mlp.gate.weight");
    boolean bias = name.endsWith("e_score_correction_bias");
    if (gate && layout.transposedGates()) {
      return new Stored(name, new long[] {shape[1], shape[0]}, () -> transpose(tensor.get()));
    }
    if (bias && layout.flatBias()) {
      return new Stored(name, new long[] {shape[0] * shape[1]}, () -> tensor.get().data());
    }
    return new Stored(name, shape, () -> tensor.get().data());
  }

  private static FloatBuffer transpose(FloatTensor t) {
    int rows = (int) t.shape()[0];
    int cols = (int) t.shape()[1];
    FloatBuffer out = floats(rows * cols);
    for (int r = 0; r < rows; r++) {
      for (int c = 0; c < cols; c++) {
        out.put(c * rows + r, t.data().get(r * cols + c));
      }
    }
    return out;
  }

  private static List<Stored> extras(ModelConfig cfg) {
    List<Stored> out = new ArrayList<>();
    out.add(
        new Stored(
            EXTRA_NAMES.get(0), new long[] {16, 3 * 14 * 14}, () -> fill(16 * 3 * 14 * 14, 0.01f)));
    out.add(
        new Stored(
            EXTRA_NAMES.get(1),
            new long[] {cfg.hidden(), 4 * 16},
            () -> fill(cfg.hidden() * 4 * 16, Float.NaN)));
    out.add(
        new Stored(EXTRA_NAMES.get(2), new long[] {cfg.hidden()}, () -> fill(cfg.hidden(), 1f)));
    if (cfg.tieEmbeddings()) {
      out.add(
          new Stored(
              WeightNames.LM_HEAD,
              new long[] {cfg.vocabSize(), cfg.hidden()},
              () -> fill(cfg.vocabSize() * cfg.hidden(), -1f)));
    }
    return out;
  }

  private static FloatBuffer fill(int n, float value) {
    FloatBuffer b = floats(n);
    for (int i = 0; i < n; i++) {
      b.put(i, value);
    }
    return b;
  }

  private static FloatBuffer floats(int n) {
    return ByteBuffer.allocateDirect(n * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
  }

  /** Writes one file and returns its tensor data bytes. */
  private static long writeFile(
      Path file, SafetensorsDType dtype, Map<String, String> meta, List<Stored> tensors) {
    SafetensorsWriter w = new SafetensorsWriter(dtype).metadata(meta);
    for (Stored t : tensors) {
      w.add(t.name(), t.shape(), t.data());
    }
    w.write(file);
    return w.dataBytes();
  }

  private static void putPerGroup(
      ObjectNode root, String key, List<ExpertGroup> groups, ToIntFunction<ExpertGroup> f) {
    if (groups.size() == 1) {
      root.put(key, f.applyAsInt(groups.get(0)));
    } else {
      ArrayNode a = root.putArray(key);
      groups.forEach(g -> a.add(f.applyAsInt(g)));
    }
  }

  /** The PT release's keys (top-level resampler and token keys, {@code vision_config}). */
  private static void putVision(ObjectNode root, VisionConfig v) {
    root.put("spatial_conv_size", v.spatialMerge());
    root.put("temporal_conv_size", v.temporalMerge());
    root.put("pixel_hidden_size", v.width());
    root.put("use_temporal_conv", v.temporalMlp());
    ImageTokenIds ids = v.tokens();
    putId(root, "image_start_token_id", ids.start());
    putId(root, "image_end_token_id", ids.end());
    putId(root, "im_patch_id", ids.placeholder());
    putId(root, "video_start_token_id", ids.videoStart());
    putId(root, "video_end_token_id", ids.videoEnd());
    ObjectNode vc = root.putObject("vision_config");
    vc.put("depth", v.depth());
    vc.put("embed_dim", v.width());
    vc.put("hidden_size", v.width());
    vc.put("num_heads", v.heads());
    vc.put("intermediate_size", v.mlpWidth());
    vc.put("patch_size", v.patchSize());
    vc.put("spatial_merge_size", v.spatialMerge());
    vc.put("in_channels", v.inChannels());
    vc.put("layer_norm_eps", v.layerNormEps());
    vc.put("rope_theta", v.ropeTheta());
    vc.put("min_pixels", v.minPixels());
    vc.put("max_pixels", v.maxPixels());
    ArrayNode mean = vc.putArray("image_mean");
    v.imageMean().forEach(mean::add);
    ArrayNode std = vc.putArray("image_std");
    v.imageStd().forEach(std::add);
  }

  private static void putId(ObjectNode root, String key, int id) {
    if (id != ImageTokenIds.UNKNOWN) {
      root.put(key, id);
    }
  }

  private static String text(ObjectNode root) {
    try {
      return MAPPER.writeValueAsString(root) + "\n";
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }
}
