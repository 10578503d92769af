package dev.pdserve.model.weights;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.pdserve.model.weights.SafetensorsFile.TensorInfo;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/**
 * The parsed, validated header of a {@code .safetensors} file: every tensor's entry (dtype, shape,
 * offsets inside the data section and consistent with dtype × shape, no two tensors overlapping)
 * and the {@code __metadata__} strings. Each problem is a {@link WeightException} naming the file
 * and, where there is one, the tensor.
 */
record SafetensorsHeader(Map<String, TensorInfo> tensors, Map<String, String> metadata) {
  private static final ObjectMapper MAPPER =
      new ObjectMapper().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

  /**
   * Parses {@code json}, the header of {@code path}, whose data section is {@code dataLen} bytes.
   */
  static SafetensorsHeader parse(Path path, String json, long dataLen) {
    JsonNode root;
    try {
      root = MAPPER.readTree(json);
    } catch (JsonProcessingException e) {
      throw corrupt(path, "has a header that is not valid JSON: " + e.getOriginalMessage());
    }
    if (root == null || !root.isObject()) {
      throw corrupt(path, "has a header that is not a JSON object");
    }
    Map<String, TensorInfo> infos = new TreeMap<>();
    Map<String, String> meta = new LinkedHashMap<>();
    for (Map.Entry<String, JsonNode> field : root.properties()) {
      String name = field.getKey();
      JsonNode node = field.getValue();
      if (name.equals("__metadata__")) {
        if (!node.isObject()) {
          throw corrupt(path, "has a __metadata__ entry that is not a JSON object");
        }
        node.properties()
            .forEach(
                m ->
                    meta.put(
                        m.getKey(),
                        m.getValue().isTextual()
                            ? m.getValue().asText()
                            : m.getValue().toString()));
        continue;
      }
      infos.put(name, entry(path, name, node, dataLen));
    }
    checkNoOverlaps(path, infos.values());
    return new SafetensorsHeader(
        Collections.unmodifiableMap(infos), Collections.unmodifiableMap(meta));
  }

  private static TensorInfo entry(Path path, String name, JsonNode node, long dataLen) {
    if (!node.isObject()) {
      throw corrupt(
          path, "has a bad header entry for tensor " + name + ": it is not a JSON object");
    }
    JsonNode dtype = node.get("dtype");
    JsonNode shapeNode = node.get("shape");
    JsonNode offsets = node.get("data_offsets");
    if (dtype == null || !dtype.isTextual()) {
      throw corrupt(
          path, "has a bad header entry for tensor " + name + ": dtype is missing or not a string");
    }
    if (shapeNode == null || !shapeNode.isArray()) {
      throw corrupt(
          path, "has a bad header entry for tensor " + name + ": shape is missing or not a list");
    }
    long[] shape = new long[shapeNode.size()];
    long elements = 1;
    for (int i = 0; i < shape.length; i++) {
      JsonNode d = shapeNode.get(i);
      if (!d.isIntegralNumber() || !d.canConvertToLong() || d.asLong() < 0) {
        throw corrupt(
            path,
            "has a bad header entry for tensor "
                + name
                + ": shape "
                + shapeNode
                + " must hold non-negative integers");
      }
      shape[i] = d.asLong();
      elements = multiplyChecked(path, elements, shape[i], name);
    }
    if (offsets == null
        || !offsets.isArray()
        || offsets.size() != 2
        || !offsets.get(0).canConvertToLong()
        || !offsets.get(1).canConvertToLong()
        || !offsets.get(0).isIntegralNumber()
        || !offsets.get(1).isIntegralNumber()) {
      throw corrupt(
          path,
          "has a bad header entry for tensor "
              + name
              + ": data_offsets must be a list [begin, end] of integers, got "
              + offsets);
    }
    long begin = offsets.get(0).asLong();
    long end = offsets.get(1).asLong();
    if (begin < 0 || end < begin) {
      throw corrupt(
          path,
          "has a bad header entry for tensor "
              + name
              + ": data_offsets ["
              + begin
              + ", "
              + end
              + "] are not an ordered range");
    }
    if (end > dataLen) {
      throw corrupt(
          path,
          "has a bad header entry for tensor "
              + name
              + ": data_offsets ["
              + begin
              + ", "
              + end
              + "] run past the end of the data section ("
              + dataLen
              + " bytes; truncated file?)");
    }
    Optional<SafetensorsDType> type = SafetensorsDType.byName(dtype.asText());
    if (type.isPresent()) {
      long expectedBytes = multiplyChecked(path, elements, type.get().bytes(), name);
      if (end - begin != expectedBytes) {
        throw corrupt(
            path,
            "has a bad header entry for tensor "
                + name
                + ": data_offsets ["
                + begin
                + ", "
                + end
                + "] span "
                + (end - begin)
                + " bytes but "
                + dtype.asText()
                + Arrays.toString(shape)
                + " needs "
                + expectedBytes);
      }
    }
    return new TensorInfo(name, dtype.asText(), shape, begin, end);
  }

  private static long multiplyChecked(Path path, long a, long b, String name) {
    try {
      return Math.multiplyExact(a, b);
    } catch (ArithmeticException e) {
      throw corrupt(path, "has a bad header entry for tensor " + name + ": shape is too large");
    }
  }

  private static void checkNoOverlaps(Path path, Iterable<TensorInfo> infos) {
    List<TensorInfo> sorted = new ArrayList<>();
    for (TensorInfo t : infos) {
      if (t.byteLength() > 0) {
        sorted.add(t);
      }
    }
    sorted.sort(Comparator.comparingLong(TensorInfo::begin));
    for (int i = 1; i < sorted.size(); i++) {
      TensorInfo prev = sorted.get(i - 1);
      TensorInfo cur = sorted.get(i);
      if (cur.begin() < prev.end()) {
        throw corrupt(
            path,
            "has overlapping tensors "
                + prev.name()
                + " ["
                + prev.begin()
                + ", "
                + prev.end()
                + ") and "
                + cur.name()
                + " ["
                + cur.begin()
                + ", "
                + cur.end()
                + ") overlap");
      }
    }
  }

  static WeightException corrupt(Path file, String what) {
    return new WeightException("safetensors file " + file + " " + what);
  }
}
