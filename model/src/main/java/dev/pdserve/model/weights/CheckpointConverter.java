package dev.pdserve.model.weights;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.model.config.ConfigException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * Rewrites an ERNIE checkpoint in the engine's own layout: F32, canonical names, gates {@code
 * [experts, hidden]}, correction biases {@code [groups, experts]}, nothing the engine does not use.
 * The source is validated first; tensors are streamed one at a time from the source's mapping to
 * the output file, so memory use is bounded by the largest tensor, not the model.
 */
public final class CheckpointConverter {
  /** Files copied unchanged when the checkpoint has them. */
  static final List<String> TOKENIZER_FILES =
      List.of("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json");

  private static final ObjectMapper MAPPER =
      new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  private CheckpointConverter() {}

  /**
   * Converts the checkpoint in {@code checkpointDir} into {@code outDir} (created if absent).
   *
   * @throws IllegalArgumentException if {@code outDir} is the checkpoint directory, or is not empty
   *     and {@code options} do not allow overwriting
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
      prepare(outDir, options);
      List<Path> written = new ArrayList<>();
      long bytes = writeWeights(model, outDir, options, written);
      copy(checkpointDir.resolve(ModelDirectory.CONFIG_FILE), outDir, written);
      for (String name : TOKENIZER_FILES) {
        Path f = checkpointDir.resolve(name);
        if (Files.isRegularFile(f)) {
          copy(f, outDir, written);
        }
      }
      return new ConvertReport(
          outDir, model.weights().names().size(), bytes, written, model.weights().ignoredNames());
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

  private static long writeWeights(
      ModelDirectory model, Path outDir, ConvertOptions options, List<Path> written) {
    WeightSource src = model.weights();
    List<List<String>> shards = new ArrayList<>();
    List<String> current = new ArrayList<>();
    long currentBytes = 0;
    long totalData = 0;
    for (String name : src.names()) {
      long bytes = 4L * elements(src.shape(name).orElseThrow());
      if (!current.isEmpty() && currentBytes + bytes > options.maxShardBytes()) {
        shards.add(current);
        current = new ArrayList<>();
        currentBytes = 0;
      }
      current.add(name);
      currentBytes += bytes;
      totalData += bytes;
    }
    shards.add(current);

    long fileBytes = 0;
    Map<String, String> weightMap = new TreeMap<>();
    for (int i = 0; i < shards.size(); i++) {
      String file =
          shards.size() == 1
              ? CheckpointWeights.SINGLE_FILE
              : String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size());
      SafetensorsWriter w =
          new SafetensorsWriter(SafetensorsDType.F32)
              .metadata(
                  Map.of(
                      "format",
                      "pt",
                      CheckpointWeights.GATE_LAYOUT_KEY,
                      CheckpointWeights.GATES_EXPERTS_HIDDEN));
      for (String name : shards.get(i)) {
        w.add(name, src.shape(name).orElseThrow(), () -> src.find(name).orElseThrow().data());
        weightMap.put(name, file);
      }
      Path out = outDir.resolve(file);
      fileBytes += w.write(out);
      written.add(out);
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
