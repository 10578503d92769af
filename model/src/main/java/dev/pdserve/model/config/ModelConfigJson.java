package dev.pdserve.model.config;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Reads an ERNIE {@code config.json}: the text-only MoE layout (keys at the top level) and the VL
 * layout (language keys at the top level or under {@code text_config}, plus {@code vision_config}).
 * Expert counts and widths may be a number or a {@code [text, vision]} list; MoE layers are given
 * by {@code mlp_layer_types} or by {@code moe_layer_start_index} / {@code moe_layer_interval} /
 * {@code moe_layer_end_index}.
 */
public final class ModelConfigJson {
  private static final ObjectMapper MAPPER = new ObjectMapper();

  private ModelConfigJson() {}

  public static ModelConfig read(Path file) {
    String text;
    try {
      text = Files.readString(file);
    } catch (NoSuchFileException e) {
      throw new ConfigException("config file " + file + " does not exist");
    } catch (IOException e) {
      throw new ConfigException("cannot read config file " + file + ": " + e.getMessage(), e);
    }
    return parse(text, file.toString());
  }

  /** Whether {@code root} declares pdserve's own pre-quantized format. */
  private static boolean isPdserveQuantized(JsonNode root) {
    JsonNode q = root.get("quantization_config");
    return q != null
        && q.isObject()
        && q.has("quant_method")
        && "pdserve".equals(q.get("quant_method").asText());
  }

  public static ModelConfig parse(String json, String source) {
    JsonNode root;
    try {
      root = MAPPER.readTree(json);
    } catch (JsonProcessingException e) {
      throw new ConfigException(
          source
              + " is not valid JSON: "
              + e.getOriginalMessage()
              + " at line "
              + e.getLocation().getLineNr(),
          e);
    }
    if (root == null || !root.isObject()) {
      throw new ConfigException(source + " must hold a JSON object");
    }
    if (root.has("quantization_config") && !isPdserveQuantized(root)) {
      // A checkpoint quantized by another tool (GPTQ, AWQ, FastDeploy WINT...): its tensors are in
      // layouts pdserve does not read. Its own pre-quantized format ("quant_method": "pdserve",
      // dev.pdserve.model.quant.StoredQuantization) is read.
      throw new ConfigException(
          source
              + " declares quantization_config "
              + root.get("quantization_config")
              + ": checkpoints pre-quantized by other tools are not read; give the bf16/fp16/fp32"
              + " checkpoint and choose pdserve.model.quantization (--quantization), or write a"
              + " pre-quantized one with 'pdserve model convert --quantize'");
    }
    JsonNode text =
        root.has("text_config") && root.get("text_config").isObject()
            ? merged(root, root.get("text_config"))
            : root;
    Reader r = new Reader(text, source);

    int hidden = r.intReq("hidden_size");
    int layers = r.intReq("num_hidden_layers");
    int heads = r.intReq("num_attention_heads");
    int kvHeads = r.intOpt("num_key_value_heads", heads);
    int headDim = r.intOpt("head_dim", heads > 0 ? hidden / heads : 0);
    int vocab = r.intReq("vocab_size");

    List<Integer> experts = r.intList("moe_num_experts");
    List<Integer> moeInter = r.intList("moe_intermediate_size");
    List<Integer> starts = r.intList("moe_layer_start_index");
    List<Integer> ends = r.intList("moe_layer_end_index");
    int interval = r.intOpt("moe_layer_interval", 1);
    if (interval < 1) {
      throw new ConfigException(source + ": moe_layer_interval must be >= 1, got " + interval);
    }

    List<LayerKind> kinds = new ArrayList<>();
    JsonNode types = text.get("mlp_layer_types");
    if (types != null && types.isArray()) {
      for (JsonNode t : types) {
        String s = t.asText().toLowerCase();
        kinds.add(s.contains("moe") || s.contains("sparse") ? LayerKind.MOE : LayerKind.DENSE);
      }
    }

    List<ExpertGroup> groups = new ArrayList<>();
    if (!experts.isEmpty() && experts.get(0) > 0) {
      if (moeInter.isEmpty()) {
        throw new ConfigException(
            source + ": moe_intermediate_size is required when moe_num_experts is set");
      }
      for (int g = 0; g < experts.size(); g++) {
        int first = pick(starts, g, kinds.isEmpty() ? 1 : firstMoe(kinds));
        int last = pick(ends, g, layers - 1);
        if (last < 0) {
          last = layers + last; // -1 means the last layer
        }
        if (first < 0 || first >= layers) {
          throw new ConfigException(
              source
                  + ": moe_layer_start_index "
                  + first
                  + " is outside [0, "
                  + (layers - 1)
                  + "]");
        }
        groups.add(
            new ExpertGroup(
                g == 0 ? "text" : g == 1 ? "vision" : "group" + g,
                experts.get(g),
                pick(moeInter, g, moeInter.get(0)),
                first,
                Math.min(last, layers - 1)));
      }
    }
    if (kinds.isEmpty()) {
      for (int l = 0; l < layers; l++) {
        boolean moe = false;
        for (ExpertGroup g : groups) {
          moe |= g.inLayer(l) && ((l + 1) % interval == 0);
        }
        kinds.add(moe ? LayerKind.MOE : LayerKind.DENSE);
      }
    }

    Optional<VisionConfig> vision = Optional.empty();
    JsonNode vc = root.get("vision_config");
    if (vc != null && vc.isObject()) {
      vision = Optional.of(vision(new Reader(vc, source + " vision_config"), r, source));
    }

    String name = root.has("_name_or_path") ? root.get("_name_or_path").asText() : source;
    double theta = r.doubleOpt("rope_theta", 10000.0);
    JsonNode ropeParams = text.get("rope_parameters");
    if (ropeParams != null && ropeParams.has("rope_theta")) {
      theta = ropeParams.get("rope_theta").asDouble();
    }
    return new ModelConfig(
        name,
        vocab,
        hidden,
        layers,
        heads,
        kvHeads,
        headDim,
        r.intOpt("intermediate_size", 4 * hidden),
        r.doubleOpt("rms_norm_eps", 1e-5),
        theta,
        r.intOpt("max_position_embeddings", 131072),
        r.boolOpt("tie_word_embeddings", true),
        kinds,
        groups,
        r.intOpt("moe_k", 0),
        r.intOpt("moe_num_shared_experts", 0),
        r.doubleOpt("moe_norm_min", 1e-12),
        r.intOpt("bos_token_id", 1),
        eos(text, source),
        r.intOpt("pad_token_id", 0),
        r.intOpt("freq_allocation", 20),
        vision);
  }

  /**
   * The vision side: the tower from {@code vision_config} (the PT release's and the transformers
   * port's key names), the resampler and image token ids from the top level.
   */
  private static VisionConfig vision(Reader v, Reader top, String source) {
    int width = v.intOpt("embed_dim", v.intOpt("hidden_size", 1280));
    int pixelHidden = top.intOpt("pixel_hidden_size", width);
    if (pixelHidden != width) {
      throw new ConfigException(
          source
              + ": pixel_hidden_size ("
              + pixelHidden
              + ") must equal vision_config.embed_dim ("
              + width
              + ")");
    }
    int merge = v.intOpt("spatial_merge_size", top.intOpt("spatial_conv_size", 2));
    int conv = top.intOpt("spatial_conv_size", merge);
    if (conv != merge) {
      throw new ConfigException(
          source
              + ": spatial_conv_size ("
              + conv
              + ") must equal vision_config.spatial_merge_size ("
              + merge
              + ")");
    }
    int mlp =
        v.node().has("intermediate_size")
            ? v.intReq("intermediate_size")
            : (int) Math.round(v.doubleOpt("mlp_ratio", 4.0) * width);
    double theta = v.doubleOpt("rope_theta", 10000.0);
    JsonNode ropeParams = v.node().get("rope_parameters");
    if (ropeParams != null && ropeParams.has("rope_theta")) {
      theta = ropeParams.get("rope_theta").asDouble();
    }
    Reader pre = v.node().has("min_pixels") || v.node().has("image_mean") ? v : top;
    return new VisionConfig(
        v.intOpt("depth", 32),
        width,
        v.intOpt("num_heads", 16),
        mlp,
        v.intOpt("patch_size", 14),
        merge,
        v.intOpt("temporal_merge_size", top.intOpt("temporal_conv_size", 2)),
        v.intOpt("in_channels", 3),
        v.doubleOpt("layer_norm_eps", v.doubleOpt("rms_norm_eps", 1e-6)),
        theta,
        top.boolOpt("use_temporal_conv", true),
        pre.longOpt("min_pixels", VisionConfig.DEFAULT_MIN_PIXELS),
        pre.longOpt("max_pixels", VisionConfig.DEFAULT_MAX_PIXELS),
        pre.doubleList("image_mean", VisionConfig.CLIP_MEAN),
        pre.doubleList("image_std", VisionConfig.CLIP_STD),
        new ImageTokenIds(
            top.intOpt("image_start_token_id", ImageTokenIds.UNKNOWN),
            top.intOpt("image_end_token_id", ImageTokenIds.UNKNOWN),
            top.intOpt("im_patch_id", top.intOpt("image_token_id", ImageTokenIds.UNKNOWN)),
            top.intOpt("video_start_token_id", ImageTokenIds.UNKNOWN),
            top.intOpt("video_end_token_id", ImageTokenIds.UNKNOWN)));
  }

  private static int eos(JsonNode n, String source) {
    JsonNode e = n.get("eos_token_id");
    if (e == null || e.isNull()) {
      return 2;
    }
    if (e.isArray()) {
      if (e.isEmpty()) {
        throw new ConfigException(source + ": eos_token_id is an empty list");
      }
      return e.get(0).asInt();
    }
    if (!e.canConvertToInt()) {
      throw new ConfigException(source + ": eos_token_id must be an integer, got " + e);
    }
    return e.asInt();
  }

  private static int firstMoe(List<LayerKind> kinds) {
    int i = kinds.indexOf(LayerKind.MOE);
    return i < 0 ? 0 : i;
  }

  private static int pick(List<Integer> values, int index, int fallback) {
    if (values.isEmpty()) {
      return fallback;
    }
    return index < values.size() ? values.get(index) : values.get(values.size() - 1);
  }

  private static JsonNode merged(JsonNode root, JsonNode textConfig) {
    ObjectNode out = root.deepCopy();
    out.remove("text_config");
    textConfig.fields().forEachRemaining(e -> out.set(e.getKey(), e.getValue()));
    return out;
  }

  /** Typed access to one JSON object, with errors that name the key. */
  private record Reader(JsonNode node, String source) {
    int intReq(String key) {
      JsonNode v = node.get(key);
      if (v == null || v.isNull()) {
        throw new ConfigException(source + ": required key " + key + " is missing");
      }
      return asInt(key, v);
    }

    int intOpt(String key, int fallback) {
      JsonNode v = node.get(key);
      return v == null || v.isNull() ? fallback : asInt(key, v);
    }

    double doubleOpt(String key, double fallback) {
      JsonNode v = node.get(key);
      if (v == null || v.isNull()) {
        return fallback;
      }
      if (!v.isNumber()) {
        throw new ConfigException(source + ": " + key + " must be a number, got " + v);
      }
      return v.asDouble();
    }

    long longOpt(String key, long fallback) {
      JsonNode v = node.get(key);
      if (v == null || v.isNull()) {
        return fallback;
      }
      if (!v.isIntegralNumber() || !v.canConvertToLong()) {
        throw new ConfigException(source + ": " + key + " must be an integer, got " + v);
      }
      return v.asLong();
    }

    List<Double> doubleList(String key, List<Double> fallback) {
      JsonNode v = node.get(key);
      if (v == null || v.isNull()) {
        return fallback;
      }
      if (!v.isArray()) {
        throw new ConfigException(source + ": " + key + " must be a list of numbers, got " + v);
      }
      List<Double> out = new ArrayList<>();
      for (JsonNode e : v) {
        if (!e.isNumber()) {
          throw new ConfigException(source + ": " + key + " must be a list of numbers, got " + v);
        }
        out.add(e.asDouble());
      }
      return out;
    }

    boolean boolOpt(String key, boolean fallback) {
      JsonNode v = node.get(key);
      if (v == null || v.isNull()) {
        return fallback;
      }
      if (!v.isBoolean()) {
        throw new ConfigException(source + ": " + key + " must be true or false, got " + v);
      }
      return v.asBoolean();
    }

    List<Integer> intList(String key) {
      JsonNode v = node.get(key);
      List<Integer> out = new ArrayList<>();
      if (v == null || v.isNull()) {
        return out;
      }
      if (v.isArray()) {
        for (JsonNode e : v) {
          out.add(asInt(key, e));
        }
      } else {
        out.add(asInt(key, v));
      }
      return out;
    }

    private int asInt(String key, JsonNode v) {
      if (!v.isIntegralNumber() || !v.canConvertToInt()) {
        throw new ConfigException(source + ": " + key + " must be an integer, got " + v);
      }
      return v.asInt();
    }
  }
}
