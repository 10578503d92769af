package dev.pdserve.model.weights;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.model.config.ConfigException;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.quant.BlockQuantizer;
import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.QuantizedMatrix;
import dev.pdserve.model.quant.StoredQuantization;
import dev.pdserve.model.quant.WeightQuantization;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Rewrites an ERNIE checkpoint in the engine's own layout: F32, canonical names, gates {@code
 * [experts, hidden]}, correction biases {@code [groups, experts]}, nothing the engine does not use.
 * The source is validated first; tensors are streamed one at a time from the source's mapping to
 * the output file, so memory use is bounded by the largest tensor, not the model.
 *
 * <p>With a quantization ({@link ConvertOptions#quantization()}), every matrix it quantizes ({@link
 * QuantizedLayout#formats}) is written pre-quantized instead — MatMulNBits codes, fp32 scales and
 * zero points, quantized by the same {@link BlockQuantizer} call quantize-on-load makes (its rows
 * spread over the cores), so the bytes are the ones the engine would compute — and the mode, block
 * size and format version are recorded in every file's metadata and in the output {@code
 * config.json} ({@link StoredQuantization}). The embedding table is written only quantized, in the
 * LM head's format (tied: once, for both). One source tensor is read and quantized at a time;
 * memory stays bounded by the largest tensor (as fp32, plus its quantized form).
 */
public final class CheckpointConverter {
  /** Files copied unchanged when the checkpoint has them. */
  static final List<String> TOKENIZER_FILES =
      List.of("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json");

  private static final Logger LOG = LogManager.getLogger(CheckpointConverter.class);

  private static final ObjectMapper MAPPER =
      new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  private CheckpointConverter() {}

  /**
   * Converts the checkpoint in {@code checkpointDir} into {@code outDir} (created if absent).
   *
   * @throws IllegalArgumentException if {@code outDir} is the checkpoint directory, or is not empty
   *     and {@code options} do not allow overwriting, or the checkpoint is already pre-quantized
   * @throws ConfigException if the checkpoint's config is missing or bad
   * @throws WeightException if the checkpoint's weights are missing, unreadable or fail validation
   * @throws UncheckedIOException if writing fails
   */
  public static ConvertReport convert(Path checkpointDir, Path outDir, ConvertOptions options) {
    if (checkpointDir.toAbsolutePath().normalize().equals(outDir.toAbsolutePath().normalize())) {
      throw new IllegalArgumentException(
          "output directory " + outDir + " is the checkpoint directory; choose another");
    }
    try (ModelDirectory model = ModelDirectory.open(checkpointDir)) {
      if (model.storedQuantization().isPresent()) {
        throw new IllegalArgumentException(
            "checkpoint "
                + checkpointDir
                + " is already stored quantized "
                + model.storedQuantization().get().describe()
                + "; convert the original bf16/fp16/fp32 checkpoint instead");
      }
      Optional<StoredQuantization> stored =
          options.quantization().isQuantized()
              ? Optional.of(StoredQuantization.of(options.quantization()))
              : Optional.empty();
      prepare(outDir, options);
      List<Path> written = new ArrayList<>();
      Plan plan =
          plan(model, stored.isPresent() ? options.quantization() : WeightQuantization.NONE);
      long bytes = writeWeights(plan, outDir, options, stored, written);
      Path config = checkpointDir.resolve(ModelDirectory.CONFIG_FILE);
      if (stored.isPresent()) {
        writeConfig(config, outDir, model.config(), stored.get(), written);
      } else {
        copy(config, outDir, written);
      }
      for (String name : TOKENIZER_FILES) {
        Path f = checkpointDir.resolve(name);
        if (Files.isRegularFile(f)) {
          copy(f, outDir, written);
        }
      }
      return new ConvertReport(
          outDir,
          plan.tensors(),
          plan.quantized(),
          stored,
          bytes,
          written,
          model.weights().ignoredNames());
    }
  }

  private static void prepare(Path outDir, ConvertOptions options) {
    try {
      Files.createDirectories(outDir);
      List<Path> present;
      try (Stream<Path> s = Files.list(outDir)) {
        present = s.sorted().toList();
      }
      if (present.isEmpty()) {
        return;
      }
      if (!options.overwrite()) {
        throw new IllegalArgumentException(
            "output directory "
                + outDir
                + " is not empty ("
                + present.size()
                + " entries, e.g. "
                + present.get(0).getFileName()
                + "); choose an empty directory or allow overwriting");
      }
      for (Path p : present) {
        String n = p.getFileName().toString();
        if (n.endsWith(".safetensors")
            || n.endsWith(".safetensors.index.json")
            || n.endsWith(".safetensors.partial")) {
          Files.delete(
              p); // stale shards of an earlier conversion must not survive next to the new ones
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(
          "cannot prepare output directory " + outDir + ": " + e.getMessage(), e);
    }
  }

  /** One output tensor: its name, data bytes, and how to add it to a file's writer. */
  private record Part(String name, long bytes, Consumer<SafetensorsWriter> add) {}

  /**
   * The output tensors, grouped per source tensor (a group never spans two files, so a matrix's
   * codes, scales and zero points are written one after the other and it is quantized once).
   */
  private record Plan(List<List<Part>> groups, int tensors, int quantized) {}

  /**
   * What to write for {@code q}: the embedding table only quantized unless {@code q} keeps the
   * embeddings fp32 (then both, as format version 1 did).
   */
  private static Plan plan(ModelDirectory model, WeightQuantization q) {
    WeightSource src = model.weights();
    Map<String, QuantFormat> formats = QuantizedLayout.formats(model.config(), q);
    LastQuantized last = new LastQuantized(src);
    List<List<Part>> groups = new ArrayList<>();
    int tensors = 0;
    int quantized = 0;
    for (String name : src.names()) {
      long[] shape = src.shape(name).orElseThrow();
      List<Part> group = new ArrayList<>();
      if (QuantizedLayout.needsFp32(name, formats, q)) {
        group.add(
            new Part(
                name,
                4L * elements(shape),
                w -> w.add(name, shape, () -> src.find(name).orElseThrow().data())));
      }
      QuantFormat f = formats.get(name);
      if (f != null) {
        quantizedParts(name, shape[0], shape[1], f, last, group);
        quantized++;
      }
      tensors += group.size();
      groups.add(group);
    }
    return new Plan(groups, tensors, quantized);
  }

  private static void quantizedParts(
      String base, long n, long k, QuantFormat f, LastQuantized last, List<Part> group) {
    long[] codes = QuantizedLayout.codesShape(n, k, f);
    long[] scales = QuantizedLayout.scalesShape(n, k, f);
    group.add(
        new Part(
            QuantizedLayout.codesName(base),
            elements(codes),
            w ->
                w.addRaw(
                    QuantizedLayout.codesName(base),
                    SafetensorsDType.U8,
                    codes,
                    () -> ByteBuffer.wrap(last.get(base, f).codes()))));
    group.add(
        new Part(
            QuantizedLayout.scalesName(base),
            4L * elements(scales),
            w ->
                w.addRaw(
                    QuantizedLayout.scalesName(base),
                    SafetensorsDType.F32,
                    scales,
                    () -> littleEndian(last.get(base, f).scales()))));
    if (f.zeroPoints()) {
      long[] zp = QuantizedLayout.zeroPointsShape(n, k, f);
      group.add(
          new Part(
              QuantizedLayout.zeroPointsName(base),
              zp[0],
              w ->
                  w.addRaw(
                      QuantizedLayout.zeroPointsName(base),
                      SafetensorsDType.U8,
                      zp,
                      () -> padded(last.get(base, f).zeroPoints(), (int) zp[0]))));
    }
  }

  private static ByteBuffer littleEndian(float[] values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(values);
    return b;
  }

  private static ByteBuffer padded(byte[] bytes, int length) {
    return ByteBuffer.wrap(Arrays.copyOf(bytes, length));
  }

  /**
   * The last matrix quantized, kept only until the next one is asked for: the parts of one matrix
   * are written one after another, so each is quantized once and only one is held at a time.
   */
  private static final class LastQuantized {
    private final WeightSource src;
    private String base;
    private QuantFormat format;
    private QuantizedMatrix matrix;

    LastQuantized(WeightSource src) {
      this.src = src;
    }

    QuantizedMatrix get(String name, QuantFormat f) {
      if (!name.equals(base) || !f.equals(format)) {
        matrix = null; // let the previous matrix go before making the next
        FloatTensor t = src.find(name).orElseThrow();
        long[] shape = t.shape();
        matrix =
            BlockQuantizer.quantizeInParallel(
                t.data().duplicate().rewind(), (int) shape[0], (int) shape[1], f);
        base = name;
        format = f;
      }
      return matrix;
    }
  }

  private static long writeWeights(
      Plan plan,
      Path outDir,
      ConvertOptions options,
      Optional<StoredQuantization> stored,
      List<Path> written) {
    List<List<Part>> shards = new ArrayList<>();
    List<Part> current = new ArrayList<>();
    long currentBytes = 0;
    long totalData = 0;
    for (List<Part> group : plan.groups()) {
      long bytes = group.stream().mapToLong(Part::bytes).sum();
      if (!current.isEmpty() && currentBytes + bytes > options.maxShardBytes()) {
        shards.add(current);
        current = new ArrayList<>();
        currentBytes = 0;
      }
      current.addAll(group);
      currentBytes += bytes;
      totalData += bytes;
    }
    shards.add(current);

    Map<String, String> metadata = new TreeMap<>();
    metadata.put("format", "pt");
    metadata.put(CheckpointWeights.GATE_LAYOUT_KEY, CheckpointWeights.GATES_EXPERTS_HIDDEN);
    stored.ifPresent(q -> metadata.putAll(q.metadata()));
    long fileBytes = 0;
    Map<String, String> weightMap = new TreeMap<>();
    for (int i = 0; i < shards.size(); i++) {
      String file =
          shards.size() == 1
              ? CheckpointWeights.SINGLE_FILE
              : String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size());
      SafetensorsWriter w = new SafetensorsWriter(SafetensorsDType.F32).metadata(metadata);
      for (Part part : shards.get(i)) {
        part.add().accept(w);
        weightMap.put(part.name(), file);
      }
      Path out = outDir.resolve(file);
      fileBytes += w.write(out);
      written.add(out);
      LOG.info("wrote {} ({} of {})", out, i + 1, shards.size());
    }
    if (shards.size() > 1) {
      ObjectNode index = MAPPER.createObjectNode();
      index.putObject("metadata").put("total_size", totalData);
      ObjectNode map = index.putObject("weight_map");
      weightMap.forEach(map::put);
      Path out = outDir.resolve(CheckpointWeights.INDEX_FILE);
      try {
        MAPPER.writeValue(out.toFile(), index);
      } catch (IOException e) {
        throw new UncheckedIOException("cannot write " + out + ": " + e.getMessage(), e);
      }
      written.add(out);
    }
    return fileBytes;
  }

  /** The checkpoint's config.json with the stored quantization's block added. */
  private static void writeConfig(
      Path config, Path outDir, ModelConfig cfg, StoredQuantization stored, List<Path> written) {
    Path out = outDir.resolve(config.getFileName());
    try {
      JsonNode root = MAPPER.readTree(config.toFile());
      ((ObjectNode) root).set(StoredQuantization.CONFIG_KEY, stored.toConfig(cfg));
      MAPPER.writeValue(out.toFile(), root);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write " + out + ": " + e.getMessage(), e);
    }
    written.add(out);
  }

  private static long elements(long[] shape) {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    return n;
  }

  private static void copy(Path file, Path outDir, List<Path> written) {
    Path out = outDir.resolve(file.getFileName());
    try {
      Files.copy(file, out, StandardCopyOption.REPLACE_EXISTING);
    } catch (IOException e) {
      throw new UncheckedIOException(
          "cannot copy " + file + " to " + out + ": " + e.getMessage(), e);
    }
    written.add(out);
  }
}
