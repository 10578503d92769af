package dev.pdserve.model.weights;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.QuantizedBuffers;
import dev.pdserve.model.quant.StoredQuantization;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * The weights of an ERNIE-4.5 PT checkpoint directory ({@code model.safetensors}, or shards listed
 * by {@code model.safetensors.index.json}) under the canonical names and layouts of {@link
 * WeightNames}. Stored names are the canonical names; what differs between releases is normalised
 * here:
 *
 * <ul>
 *   <li>gates stored {@code [hidden, experts]} (the VL release) are transposed to {@code [experts,
 *       hidden]} (see {@link #GATE_LAYOUT_KEY} for square gates);
 *   <li>a correction bias stored flat ({@code [experts]}, text-only releases) is presented as
 *       {@code [groups, experts]};
 *   <li>a VL model's vision encoder, stored under {@code vision_model.} or (converted checkpoints)
 *       {@code model.vision_model.}, is presented under {@code vision_model.};
 *   <li>tensors the engine does not use ({@code mtp*}, a tied {@code lm_head.weight}, the vision
 *       side of a model configured without one) are ignored and listed by {@link #ignoredNames()}.
 * </ul>
 *
 * <p>Headers are read when the directory is opened; data is mapped on demand, and F32 data is
 * returned without a copy. Nothing is cached: each {@link #find} maps (and for 16-bit data,
 * converts) the tensor again, so callers keep what they load. Whether the tensors match the config
 * is {@link WeightValidator}'s job; this class only refuses files it cannot read.
 *
 * <p>A checkpoint written pre-quantized ({@code pdserve model convert --quantize}; every file's
 * metadata records it, {@link StoredQuantization}) holds its quantized matrices only as codes,
 * scales and zero points: {@link #storedQuantized} gives them as views of the mapping, {@link
 * #shape} their logical {@code [n, k]}, and {@link #find} nothing (there is no fp32 copy).
 */
public final class CheckpointWeights implements WeightSource {
  public static final String SINGLE_FILE = "model.safetensors";
  public static final String INDEX_FILE = "model.safetensors.index.json";

  /**
   * Safetensors metadata key saying how the file stores gates, {@value #GATES_EXPERTS_HIDDEN} or
   * {@value #GATES_HIDDEN_EXPERTS}. Only consulted when a gate is square (hidden = experts, as in
   * the {@code tiny} preset), where the shape cannot tell; the converter always writes it.
   */
  public static final String GATE_LAYOUT_KEY = "pdserve.gate_layout";

  public static final String GATES_EXPERTS_HIDDEN = "experts,hidden";
  public static final String GATES_HIDDEN_EXPERTS = "hidden,experts";

  private static final ObjectMapper MAPPER = new ObjectMapper();

  private enum Fix {
    NONE,
    TRANSPOSE,
    RESHAPE
  }

  private record Binding(
      SafetensorsFile file,
      String storedName,
      SafetensorsFile.TensorInfo stored,
      long[] shape,
      Fix fix) {}

  private final Path dir;
  private final List<SafetensorsFile> files;
  private final Map<String, Binding> bindings;
  private final List<String> ignored;
  private final Optional<StoredQuantization> stored;
  private final QuantizedBindings quantized;

  /**
   * Opens the checkpoint in {@code dir} for a model of shape {@code cfg}.
   *
   * @throws WeightException if the directory, the index or a shard is missing or corrupt, or a
   *     tensor the model needs is stored in a type that is not a float type
   */
  public CheckpointWeights(Path dir, ModelConfig cfg) {
    this.dir = dir;
    if (!Files.isDirectory(dir)) {
      throw new WeightException(
          "checkpoint directory "
              + dir
              + (Files.exists(dir) ? " is not a directory" : " does not exist"));
    }
    Map<String, SafetensorsFile> byName = new TreeMap<>();
    List<SafetensorsFile> opened = new ArrayList<>();
    try {
      Path index = dir.resolve(INDEX_FILE);
      if (Files.isRegularFile(index)) {
        openShards(index, opened, byName);
      } else if (Files.isRegularFile(dir.resolve(SINGLE_FILE))) {
        SafetensorsFile f = SafetensorsFile.open(dir.resolve(SINGLE_FILE));
        opened.add(f);
        f.names().forEach(n -> byName.put(n, f));
      } else {
        throw new WeightException(
            "checkpoint directory "
                + dir
                + " has no weights: expected "
                + SINGLE_FILE
                + " or "
                + INDEX_FILE
                + otherSafetensors(dir));
      }
      this.stored = storedQuantization(opened);
      this.bindings = Collections.unmodifiableMap(bind(cfg, byName));
      this.quantized =
          stored.isPresent()
              ? QuantizedBindings.bind(cfg, stored.get(), byName)
              : QuantizedBindings.none();
    } catch (RuntimeException e) {
      for (SafetensorsFile f : opened) {
        try {
          f.close();
        } catch (RuntimeException suppressed) {
          e.addSuppressed(suppressed);
        }
      }
      throw e;
    }
    this.files = List.copyOf(opened);
    List<String> extra = new ArrayList<>(byName.keySet());
    extra.removeAll(bindings.values().stream().map(Binding::storedName).toList());
    extra.removeAll(quantized.storedNames());
    this.ignored = List.copyOf(extra);
  }

  /** What the files' metadata records; every file must record the same. */
  private static Optional<StoredQuantization> storedQuantization(List<SafetensorsFile> files) {
    Optional<StoredQuantization> first = null;
    SafetensorsFile firstFile = null;
    for (SafetensorsFile f : files) {
      Optional<StoredQuantization> q;
      try {
        q = StoredQuantization.fromMetadata(f.metadata());
      } catch (IllegalArgumentException e) {
        throw new WeightException("safetensors file " + f.path() + ": " + e.getMessage(), e);
      }
      if (first == null) {
        first = q;
        firstFile = f;
      } else if (!first.equals(q)) {
        throw new WeightException(
            "the checkpoint's files disagree on their stored quantization: "
                + firstFile.path()
                + " has "
                + first.map(StoredQuantization::describe).orElse("none")
                + ", "
                + f.path()
                + " has "
                + q.map(StoredQuantization::describe).orElse("none"));
      }
    }
    return first == null ? Optional.empty() : first;
  }

  private void openShards(
      Path index, List<SafetensorsFile> opened, Map<String, SafetensorsFile> byName) {
    JsonNode root;
    try {
      root = MAPPER.readTree(index.toFile());
    } catch (IOException e) {
      throw new WeightException("index " + index + " is not valid JSON: " + e.getMessage(), e);
    }
    JsonNode map = root == null ? null : root.get("weight_map");
    if (map == null || !map.isObject()) {
      throw new WeightException("index " + index + " has no weight_map object");
    }
    Map<String, List<String>> tensorsByShard = new TreeMap<>();
    for (Map.Entry<String, JsonNode> e : map.properties()) {
      if (!e.getValue().isTextual()) {
        throw new WeightException(
            "index "
                + index
                + " maps tensor "
                + e.getKey()
                + " to "
                + e.getValue()
                + ", not a file name");
      }
      tensorsByShard.computeIfAbsent(e.getValue().asText(), k -> new ArrayList<>()).add(e.getKey());
    }
    for (Map.Entry<String, List<String>> e : tensorsByShard.entrySet()) {
      Path shard = dir.resolve(e.getKey()).normalize();
      if (!shard.startsWith(dir.normalize()) || !Files.isRegularFile(shard)) {
        throw new WeightException(
            "index "
                + index
                + " names shard "
                + e.getKey()
                + " (for "
                + e.getValue().size()
                + " tensors, e.g. "
                + e.getValue().get(0)
                + "), which does not exist in "
                + dir);
      }
    }
    for (Map.Entry<String, List<String>> e : tensorsByShard.entrySet()) {
      SafetensorsFile f = SafetensorsFile.open(dir.resolve(e.getKey()).normalize());
      opened.add(f);
      for (String name : e.getValue()) {
        if (!f.contains(name)) {
          throw new WeightException(
              "index "
                  + index
                  + " maps tensor "
                  + name
                  + " to shard "
                  + e.getKey()
                  + ", which does not hold it");
        }
        byName.put(name, f);
      }
    }
  }

  private static String otherSafetensors(Path dir) {
    try (Stream<Path> s = Files.list(dir)) {
      List<String> found =
          s.map(p -> p.getFileName().toString())
              .filter(n -> n.endsWith(".safetensors"))
              .sorted()
              .limit(5)
              .toList();
      return found.isEmpty()
          ? " (found no .safetensors files)"
          : " (found " + String.join(", ", found) + " without an index)";
    } catch (IOException e) {
      return "";
    }
  }

  private Map<String, Binding> bind(ModelConfig cfg, Map<String, SafetensorsFile> byName) {
    Map<String, Binding> out = new LinkedHashMap<>();
    List<String> unreadable = new ArrayList<>();
    for (Map.Entry<String, long[]> e : WeightNames.expected(cfg).entrySet()) {
      String name = e.getKey();
      String storedName = name;
      SafetensorsFile f = byName.get(name);
      for (String alias : VisionWeightNames.storedAliases(name)) {
        if (f == null && byName.containsKey(alias)) {
          f = byName.get(alias);
          storedName = alias;
        }
      }
      if (f == null) {
        continue; // missing: WeightValidator reports it
      }
      SafetensorsFile.TensorInfo info = f.info(storedName).orElseThrow();
      if (!info.type().map(SafetensorsDType::readableAsFloat).orElse(false)) {
        unreadable.add(
            "tensor "
                + name
                + " in "
                + f.path()
                + " has dtype "
                + info.dtype()
                + ", which cannot be read as float (supported: F32, BF16, F16, F64)");
        continue;
      }
      long[] want = e.getValue();
      long[] stored = info.shape();
      Fix fix = Fix.NONE;
      long[] shape = stored;
      if (isGate(name) && storedTransposed(cfg, f, want, stored)) {
        fix = Fix.TRANSPOSE;
        shape = new long[] {stored[1], stored[0]};
      } else if (isCorrectionBias(name)
          && stored.length == 1
          && want.length == 2
          && info.elements() == want[0] * want[1]) {
        fix = Fix.RESHAPE;
        shape = want.clone();
      }
      out.put(name, new Binding(f, storedName, info, shape, fix));
    }
    if (!unreadable.isEmpty()) {
      throw new WeightException(String.join("\n", unreadable), unreadable);
    }
    return out;
  }

  /**
   * Whether a gate is stored {@code [hidden, experts]}. The shape decides when hidden and experts
   * differ (every published model); when they are equal, the file's {@value #GATE_LAYOUT_KEY}
   * metadata decides, and without it the release convention: VL checkpoints transposed, text-only
   * ones not.
   */
  private static boolean storedTransposed(
      ModelConfig cfg, SafetensorsFile f, long[] want, long[] stored) {
    if (want.length != 2
        || stored.length != 2
        || stored[0] != cfg.hidden()
        || stored[1] != want[0]) {
      return false;
    }
    if (want[0] != cfg.hidden()) {
      return true;
    }
    String layout = f.metadata().get(GATE_LAYOUT_KEY);
    if (layout != null) {
      return layout.equals(GATES_HIDDEN_EXPERTS);
    }
    return cfg.hasVisionExperts();
  }

  private static boolean isGate(String name) {
    return name.contains(".mlp.gate.weight");
  }

  private static boolean isCorrectionBias(String name) {
    return name.endsWith(".mlp.moe_statics.e_score_correction_bias");
  }

  @Override
  public Optional<FloatTensor> find(String name) {
    Binding b = bindings.get(name);
    if (b == null) {
      return Optional.empty();
    }
    FloatTensor t = b.file().read(b.storedName());
    return Optional.of(
        switch (b.fix()) {
          case TRANSPOSE -> transpose(t);
          case RESHAPE -> new FloatTensor(name, b.shape(), t.data());
          case NONE -> name.equals(b.storedName()) ? t : new FloatTensor(name, t.shape(), t.data());
        });
  }

  private static FloatTensor transpose(FloatTensor t) {
    int rows = (int) t.shape()[0];
    int cols = (int) t.shape()[1];
    FloatBuffer src = t.data();
    FloatBuffer dst =
        ByteBuffer.allocateDirect(rows * cols * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
    for (int r = 0; r < rows; r++) {
      for (int c = 0; c < cols; c++) {
        dst.put(c * rows + r, src.get(r * cols + c));
      }
    }
    return new FloatTensor(t.name(), new long[] {cols, rows}, dst);
  }

  @Override
  public Optional<long[]> shape(String name) {
    Binding b = bindings.get(name);
    return b == null ? quantized.shape(name) : Optional.of(b.shape().clone());
  }

  @Override
  public Optional<StoredQuantization> storedQuantization() {
    return stored;
  }

  @Override
  public Optional<QuantizedBuffers> storedQuantized(String base, QuantFormat f) {
    return quantized.buffers(base, f);
  }

  /**
   * The canonical names present in the checkpoint as float tensors, in {@link WeightNames#expected}
   * order (not the matrices it stores only quantized).
   */
  @Override
  public Set<String> names() {
    return bindings.keySet();
  }

  /**
   * Stored tensors this source does not present (sorted): encoder, MTP, tied head, and the like.
   */
  public List<String> ignoredNames() {
    return ignored;
  }

  /** The dtype {@code name} is stored in, or empty when it is not presented. */
  public Optional<SafetensorsDType> storedType(String name) {
    Binding b = bindings.get(name);
    return b == null ? Optional.empty() : b.stored().type();
  }

  /** The safetensors files read, in name order. */
  public List<Path> files() {
    return files.stream().map(SafetensorsFile::path).toList();
  }

  public Path directory() {
    return dir;
  }

  @Override
  public String describe() {
    return "checkpoint " + dir + " (" + files.size() + (files.size() == 1 ? " file)" : " files)");
  }

  @Override
  public void close() {
    RuntimeException first = null;
    for (SafetensorsFile f : files) {
      try {
        f.close();
      } catch (RuntimeException e) {
        if (first == null) {
          first = e;
        } else {
          first.addSuppressed(e);
        }
      }
    }
    if (first != null) {
      throw first;
    }
  }
}
