package dev.pdserve.model.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.model.config.ConfigException;
import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.TreeMap;

/**
 * The quantization a checkpoint was written in by {@code pdserve model convert --quantize}: every
 * matrix its {@link #weights()} quantize is stored as MatMulNBits codes, fp32 scales and (for the
 * formats that have them) zero points, exactly the bytes quantize-on-load makes; everything else is
 * stored fp32. Recorded twice, and both must agree: in {@code config.json} as a {@value
 * #CONFIG_KEY} block with {@code "quant_method": "pdserve"}, and in every safetensors file's
 * metadata ({@link #metadata()}).
 *
 * <p>Tensor names (format version {@value #FORMAT_VERSION}), for a canonical weight {@code W}
 * {@code [n, k]} in a {@link QuantFormat} {@code f}:
 *
 * <ul>
 *   <li>{@code W}{@value #CODES_SUFFIX}: U8 {@code [n, blocks, blockSize·bits/8]};
 *   <li>{@code W}{@value #SCALES_SUFFIX}: F32 {@code [n, blocks]};
 *   <li>{@code W}{@value #ZERO_POINTS_SUFFIX} (only with zero points): U8 {@code [L]}, the first
 *       {@code n·⌈blocks·bits/8⌉} bytes the packed zero points, L that rounded up to a multiple of
 *       4 (zero bytes after), so every tensor after it stays 4-byte aligned and maps without a
 *       copy.
 * </ul>
 *
 * <p>Format version 2 (this build's) stores the token embedding table only so, in the LM head's
 * format ({@link WeightQuantization#embeddingFormat}; with tied embeddings the same tensors as the
 * LM head's): the table is gathered from them ({@code GatherBlockQuantized}) and there is no fp32
 * copy. Version 1 (still read) kept an fp32 table beside them, and for untied embeddings no
 * quantized one (the engine then quantizes that table on load).
 *
 * @param mode the quantized mode (never {@link QuantMode#NONE})
 * @param blockSize values of K per scale
 */
public record StoredQuantization(QuantMode mode, int blockSize) {
  /** Version of the on-disk layout this build writes. */
  public static final int FORMAT_VERSION = 2;

  /** Versions this build reads: 1 (an fp32 embedding table beside the codes) and 2. */
  public static final java.util.Set<Integer> READ_VERSIONS = java.util.Set.of(1, 2);

  /** The {@code quant_method} of the {@value #CONFIG_KEY} block pdserve writes. */
  public static final String QUANT_METHOD = "pdserve";

  /** The {@code config.json} key of the block. */
  public static final String CONFIG_KEY = "quantization_config";

  /** Safetensors metadata keys. */
  public static final String META_MODE = "pdserve.quantization";

  public static final String META_BLOCK_SIZE = "pdserve.quantization_block_size";
  public static final String META_VERSION = "pdserve.quantization_format_version";

  /** Suffixes of the stored parts of a quantized weight. */
  public static final String CODES_SUFFIX = ".qweight";

  public static final String SCALES_SUFFIX = ".scales";
  public static final String ZERO_POINTS_SUFFIX = ".zero_points";

  /** The configuration keys and flags a mismatch names. */
  public static final String MODE_KEY = "pdserve.model.quantization";

  public static final String MODE_FLAG = "--quantization";
  public static final String BLOCK_KEY = "pdserve.model.quantization-block-size";
  public static final String BLOCK_FLAG = "--quantization-block-size";

  private static final ObjectMapper MAPPER = new ObjectMapper();

  public StoredQuantization {
    Objects.requireNonNull(mode, "mode");
    if (mode == QuantMode.NONE) {
      throw new IllegalArgumentException("a stored quantization has a quantized mode, not none");
    }
    if (!WeightQuantization.isValidBlockSize(blockSize)) {
      throw new IllegalArgumentException(WeightQuantization.BLOCK_MUST_BE + ", got " + blockSize);
    }
  }

  /** The stored layout of {@code q} (its compute is not stored: any compute reads it). */
  public static StoredQuantization of(WeightQuantization q) {
    return new StoredQuantization(q.mode(), q.blockSize());
  }

  /** The weights as stored, computed in fp32. */
  public WeightQuantization weights() {
    return new WeightQuantization(mode, blockSize);
  }

  /** E.g. {@code int4 (block 64)}. */
  public String describe() {
    return weights().describe();
  }

  /** Whether {@code q} reads these weights as stored: same mode and block size (any compute). */
  public boolean matches(WeightQuantization q) {
    return q.mode() == mode && q.blockSize() == blockSize;
  }

  // ---- resolution against what the configuration asks for ----

  /**
   * The quantization to serve a checkpoint stored in this one with: the mode and block size given
   * or, where not given, the stored ones; computed in {@code compute}.
   *
   * @param where the checkpoint, for messages (its directory)
   * @throws IllegalArgumentException naming {@value #MODE_KEY} ({@value #MODE_FLAG}) and both
   *     values when what is given differs from what is stored
   */
  public WeightQuantization resolve(
      Optional<QuantMode> mode, Optional<Integer> blockSize, QuantCompute compute, String where) {
    WeightQuantization asked =
        new WeightQuantization(
            mode.orElse(this.mode), blockSize.orElse(this.blockSize), QuantCompute.FP32);
    requireMatches(asked, where);
    return asked.withCompute(compute);
  }

  /**
   * @throws IllegalArgumentException naming {@value #MODE_KEY} ({@value #MODE_FLAG}) and both
   *     values unless {@code asked} has the stored mode and block size
   */
  public void requireMatches(WeightQuantization asked, String where) {
    if (!matches(asked)) {
      throw new IllegalArgumentException(mismatch(asked, where));
    }
  }

  /** What a configuration asking for {@code asked} over these stored weights is told. */
  public String mismatch(WeightQuantization asked, String where) {
    String keys =
        asked.mode() == mode
            ? BLOCK_KEY + " (" + BLOCK_FLAG + ") with " + MODE_KEY + " (" + MODE_FLAG + ")"
            : MODE_KEY + " (" + MODE_FLAG + ")";
    return where
        + " is stored quantized "
        + describe()
        + " (written by 'pdserve model convert --quantize'), but "
        + keys
        + " asks for "
        + asked.withCompute(QuantCompute.FP32).describe()
        + ": leave "
        + MODE_KEY
        + " and "
        + BLOCK_KEY
        + " unset to serve it as stored, set them to "
        + mode.configName()
        + " and "
        + blockSize
        + ", or convert the original checkpoint again with --quantize "
        + asked.mode().configName();
  }

  // ---- safetensors metadata ----

  /** The metadata entries every file of such a checkpoint carries. */
  public Map<String, String> metadata() {
    Map<String, String> m = new TreeMap<>();
    m.put(META_MODE, mode.configName());
    m.put(META_BLOCK_SIZE, Integer.toString(blockSize));
    m.put(META_VERSION, Integer.toString(FORMAT_VERSION));
    return m;
  }

  /**
   * What a safetensors file's metadata records, or empty when it records none.
   *
   * @throws IllegalArgumentException when the entries are incomplete, unreadable or of another
   *     format version
   */
  public static Optional<StoredQuantization> fromMetadata(Map<String, String> meta) {
    String mode = meta.get(META_MODE);
    String block = meta.get(META_BLOCK_SIZE);
    String version = meta.get(META_VERSION);
    if (mode == null && block == null && version == null) {
      return Optional.empty();
    }
    if (mode == null || block == null || version == null) {
      throw new IllegalArgumentException(
          "metadata has only some of "
              + META_MODE
              + ", "
              + META_BLOCK_SIZE
              + " and "
              + META_VERSION
              + ": "
              + meta);
    }
    requireVersion(version);
    try {
      return Optional.of(
          new StoredQuantization(QuantMode.parse(mode), Integer.parseInt(block.trim())));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(
          "metadata " + META_MODE + "=" + mode + ", " + META_BLOCK_SIZE + "=" + block + ": " + e);
    }
  }

  private static void requireVersion(String version) {
    for (int v : READ_VERSIONS) {
      if (Integer.toString(v).equals(version.trim())) {
        return;
      }
    }
    throw new IllegalArgumentException(
        "pre-quantized format version "
            + version
            + " is not a version this build reads (1 or "
            + FORMAT_VERSION
            + "); convert the original checkpoint again with this build");
  }

  // ---- config.json ----

  /**
   * The {@value #CONFIG_KEY} block for {@code cfg}: method, format version, mode, block size, and
   * for information the bits of each component (routed experts per MoE layer) and which bit widths
   * carry zero points.
   */
  public ObjectNode toConfig(ModelConfig cfg) {
    WeightQuantization q = weights();
    ObjectNode o = MAPPER.createObjectNode();
    o.put("quant_method", QUANT_METHOD);
    o.put("format_version", FORMAT_VERSION);
    o.put("mode", mode.configName());
    o.put("block_size", blockSize);
    ObjectNode bits = o.putObject("bits");
    ObjectNode zeroPoints = o.putObject("zero_points");
    int firstMoe = -1;
    for (int l = 0; l < cfg.numLayers(); l++) {
      if (cfg.layerKind(l) == LayerKind.MOE && firstMoe < 0) {
        firstMoe = l;
      }
    }
    for (WeightComponent c : WeightComponent.values()) {
      String key = c.name().toLowerCase(Locale.ROOT);
      if (c == WeightComponent.ROUTED_EXPERTS) {
        ObjectNode perLayer = bits.putObject(key);
        for (int l = 0; l < cfg.numLayers(); l++) {
          if (cfg.layerKind(l) == LayerKind.MOE) {
            perLayer.put(Integer.toString(l), q.bits(cfg, l, c));
            putZeroPoints(zeroPoints, q, cfg, l, c);
          }
        }
      } else {
        int layer =
            c == WeightComponent.LM_HEAD || c == WeightComponent.EMBEDDINGS
                ? -1
                : Math.max(firstMoe, 0);
        bits.put(key, q.bits(cfg, layer, c));
        putZeroPoints(zeroPoints, q, cfg, layer, c);
      }
    }
    o.put("codes", "<weight>" + CODES_SUFFIX);
    o.put("scales", "<weight>" + SCALES_SUFFIX);
    o.put("zero_points_tensor", "<weight>" + ZERO_POINTS_SUFFIX);
    o.put(
        "not_quantized",
        "norms, MoE gates and correction biases, the vision tower (the embedding table is"
            + " stored in the LM head's format and gathered from it; tied: the LM head's tensors)");
    return o;
  }

  private static void putZeroPoints(
      ObjectNode zeroPoints, WeightQuantization q, ModelConfig cfg, int layer, WeightComponent c) {
    q.format(cfg, layer, c)
        .ifPresent(f -> zeroPoints.put(Integer.toString(f.bits()), f.zeroPoints()));
  }

  /**
   * What a {@code config.json} tree records, or empty when it has no pdserve {@value #CONFIG_KEY}
   * block (another method's block is {@link dev.pdserve.model.config.ModelConfigJson}'s to refuse).
   *
   * @throws ConfigException naming {@code source} when the block is pdserve's but unreadable or of
   *     another format version
   */
  public static Optional<StoredQuantization> fromConfig(JsonNode root, String source) {
    JsonNode block = root == null ? null : root.get(CONFIG_KEY);
    if (block == null || !block.isObject()) {
      return Optional.empty();
    }
    JsonNode method = block.get("quant_method");
    if (method == null || !QUANT_METHOD.equals(method.asText())) {
      return Optional.empty();
    }
    try {
      JsonNode version = block.get("format_version");
      requireVersion(version == null ? "(none)" : version.asText());
      JsonNode mode = block.get("mode");
      JsonNode blockSize = block.get("block_size");
      if (mode == null || blockSize == null || !blockSize.canConvertToInt()) {
        throw new IllegalArgumentException("mode and an integer block_size are required");
      }
      return Optional.of(new StoredQuantization(QuantMode.parse(mode.asText()), blockSize.asInt()));
    } catch (IllegalArgumentException e) {
      throw new ConfigException(
          source + ": " + CONFIG_KEY + " " + block + " is not usable: " + e.getMessage(), e);
    }
  }

  /**
   * What the {@code config.json} at {@code configFile} records.
   *
   * @throws ConfigException if it cannot be read or its pdserve block is unusable
   */
  public static Optional<StoredQuantization> read(Path configFile) {
    JsonNode root;
    try {
      root = MAPPER.readTree(Files.readString(configFile));
    } catch (IOException e) {
      throw new ConfigException("cannot read " + configFile + ": " + e.getMessage(), e);
    }
    return fromConfig(root, configFile.toString());
  }

  /**
   * What the model directory {@code dir}'s {@code config.json} records; empty also when it has none
   * or cannot be read (whoever opens the directory reports that).
   */
  public static Optional<StoredQuantization> readIfPresent(Path dir) {
    Path config = dir.resolve("config.json");
    if (!Files.isRegularFile(config)) {
      return Optional.empty();
    }
    try {
      return read(config);
    } catch (ConfigException e) {
      return Optional.empty();
    }
  }
}
