package dev.pdserve.simulator;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.Reader;
import java.lang.reflect.RecordComponent;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;

/**
 * How long modelled nodes take. Times in milliseconds.
 *
 * <p>Prefill step over chunks {@code (t_i tokens at offset o_i)}: {@code prefillBaseMs +
 * prefillPerTokenMs·Σt_i + prefillAttentionMs·Σ t_i·(o_i + t_i)}. Decode step over a batch of
 * {@code B} sequences holding {@code C} context tokens: {@code decodeBaseMs + decodePerSequenceMs·B
 * + decodePerContextTokenMs·C}. KV transfer of {@code n} tokens: {@code transferLatencyMs +
 * n·kvBytesPerToken / transferBytesPerSecond}, overlapped with the prefill compute (layer-wise
 * streaming), so only what outlasts the compute delays the first decode step. A role switch costs
 * the drain plus {@code switchMs}.
 *
 * @param name where the figures come from (profile name, file, or calibration)
 * @param prefillBaseMs fixed cost of a prefill step
 * @param prefillPerTokenMs cost per prompt token
 * @param prefillAttentionMs cost per (token × attended token) pair
 * @param prefillChunkTokens longest chunk of one prompt in a step
 * @param prefillBatchTokens token budget of one prefill step
 * @param decodeBaseMs fixed cost of a decode step
 * @param decodePerSequenceMs cost per sequence in the batch
 * @param decodePerContextTokenMs cost per context token attended by the batch
 * @param decodeMaxBatch most sequences in one decode step (the rest wait)
 * @param kvBlocksPerNode KV blocks on a decode node
 * @param kvBlockTokens tokens per KV block
 * @param kvBytesPerToken KV bytes per token (2 × layers × kv heads × head dim × bytes)
 * @param transferBytesPerSecond prefill → decode KV bandwidth
 * @param transferLatencyMs fixed cost of one KV transfer
 * @param switchMs time in SWITCHING after the drain
 */
public record CostModel(
    String name,
    double prefillBaseMs,
    double prefillPerTokenMs,
    double prefillAttentionMs,
    int prefillChunkTokens,
    int prefillBatchTokens,
    double decodeBaseMs,
    double decodePerSequenceMs,
    double decodePerContextTokenMs,
    int decodeMaxBatch,
    long kvBlocksPerNode,
    int kvBlockTokens,
    double kvBytesPerToken,
    double transferBytesPerSecond,
    double transferLatencyMs,
    double switchMs) {

  private static final ObjectMapper JSON = new ObjectMapper();

  public CostModel {
    notNegative("prefillBaseMs", prefillBaseMs);
    positive("prefillPerTokenMs", prefillPerTokenMs);
    notNegative("prefillAttentionMs", prefillAttentionMs);
    positive("prefillChunkTokens", prefillChunkTokens);
    positive("prefillBatchTokens", prefillBatchTokens);
    if (prefillBatchTokens < prefillChunkTokens) {
      throw new IllegalArgumentException(
          "prefillBatchTokens ("
              + prefillBatchTokens
              + ") must be >= prefillChunkTokens ("
              + prefillChunkTokens
              + ")");
    }
    positive("decodeBaseMs", decodeBaseMs);
    notNegative("decodePerSequenceMs", decodePerSequenceMs);
    notNegative("decodePerContextTokenMs", decodePerContextTokenMs);
    positive("decodeMaxBatch", decodeMaxBatch);
    positive("kvBlocksPerNode", kvBlocksPerNode);
    positive("kvBlockTokens", kvBlockTokens);
    positive("kvBytesPerToken", kvBytesPerToken);
    positive("transferBytesPerSecond", transferBytesPerSecond);
    notNegative("transferLatencyMs", transferLatencyMs);
    notNegative("switchMs", switchMs);
  }

  /**
   * ERNIE-4.5-VL-28B-A3B in bf16 on one H200-class GPU (141 GB HBM3e at 4.8 TB/s, ~990 dense bf16
   * TFLOPS) per node; ASSUMED, order-of-magnitude figures, not measurements — see
   * docs/PERFORMANCE.md: prefill ~25k tokens/s (3B active parameters ≈ 6 GFLOP/token at ~40 %
   * utilisation, less for MoE dispatch), attention 4·28·20·128 FLOP per token pair; decode step 12
   * ms base (expert and attention weights streamed from HBM) + 0.15 ms per sequence + KV reads of
   * 56 KiB/token at ~4 TB/s; ~64 GB of KV (70k blocks of 16 tokens); KV over a 200 Gb/s RDMA link
   * (25 GB/s); 3 s to switch a role (weights stay loaded; warm-up only).
   */
  public static CostModel h200Ernie28b() {
    return new CostModel(
        "h200-ernie-4.5-vl-28b-a3b (assumed figures)",
        8,
        0.04,
        7.2e-7,
        2048,
        8192,
        12,
        0.15,
        1.4e-5,
        256,
        70_000,
        16,
        57_344,
        25e9,
        0.5,
        3000);
  }

  /** A built-in profile by name: {@code h200} (alias {@code h200-ernie-28b}). */
  public static CostModel profile(String name) {
    return switch (name.toLowerCase(Locale.ROOT)) {
      case "h200", "h200-ernie-28b", "h200-ernie-4.5-vl-28b-a3b" -> h200Ernie28b();
      default ->
          throw new IllegalArgumentException("unknown cost profile '" + name + "'; built in: h200");
    };
  }

  /** JSON keys starting with it are notes (e.g. a calibration's floors), not coefficients. */
  public static final String NOTE_PREFIX = "_";

  /**
   * Reads a cost model from a JSON object or a {@code .properties} file whose keys are this
   * record's component names; keys left out keep the {@link #h200Ernie28b()} values. Unknown keys
   * and bad numbers are errors that name the key; JSON keys starting with {@code _} are notes and
   * skipped (scripts/gpu-calibrate writes its measured floors under {@code _calibration}).
   */
  public static CostModel load(Path file) throws IOException {
    Map<String, String> values = new LinkedHashMap<>();
    String text = Files.readString(file);
    if (file.getFileName().toString().endsWith(".properties")) {
      Properties p = new Properties();
      try (Reader r = Files.newBufferedReader(file)) {
        p.load(r);
      }
      p.stringPropertyNames().forEach(k -> values.put(k.trim(), p.getProperty(k).trim()));
    } else {
      JsonNode root;
      try {
        root = JSON.readTree(text);
      } catch (JsonProcessingException e) {
        throw new IllegalArgumentException(file + ": not valid JSON: " + e.getOriginalMessage(), e);
      }
      if (root == null || !root.isObject()) {
        throw new IllegalArgumentException(file + ": expected a JSON object of cost coefficients");
      }
      root.fields()
          .forEachRemaining(
              e -> {
                if (!e.getKey().startsWith(NOTE_PREFIX)) {
                  values.put(e.getKey(), e.getValue().asText());
                }
              });
    }
    try {
      return h200Ernie28b().with(values, file.getFileName().toString());
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
    }
  }

  /** This model with some coefficients replaced by name ({@code name} included). */
  public CostModel with(Map<String, String> values, String defaultName) {
    ObjectNode node = JSON.valueToTree(this);
    node.put("name", defaultName);
    for (Map.Entry<String, String> e : values.entrySet()) {
      JsonNode old = node.get(e.getKey());
      if (old == null) {
        throw new IllegalArgumentException(
            "unknown cost key '"
                + e.getKey()
                + "'; known keys: "
                + String.join(", ", fieldNames()));
      }
      if (old.isTextual()) {
        node.put(e.getKey(), e.getValue());
        continue;
      }
      try {
        double v = Double.parseDouble(e.getValue());
        if (old.isIntegralNumber()) {
          if (v != Math.rint(v)) {
            throw new IllegalArgumentException(
                e.getKey() + " must be a whole number, got " + e.getValue());
          }
          node.put(e.getKey(), (long) v);
        } else {
          node.put(e.getKey(), v);
        }
      } catch (NumberFormatException ex) {
        throw new IllegalArgumentException(
            e.getKey() + " must be a number, got '" + e.getValue() + "'", ex);
      }
    }
    try {
      return JSON.treeToValue(node, CostModel.class);
    } catch (IOException ex) {
      Throwable cause = ex.getCause() != null ? ex.getCause() : ex;
      throw new IllegalArgumentException(cause.getMessage(), ex);
    }
  }

  private static List<String> fieldNames() {
    return Arrays.stream(CostModel.class.getRecordComponents())
        .map(RecordComponent::getName)
        .toList();
  }

  /** The coefficients as JSON (for reports and for writing a --cost-model file). */
  public ObjectNode toJson() {
    return JSON.valueToTree(this);
  }

  /** A prefill step over chunks given as {tokens, offset} pairs. */
  public double prefillStepMs(long tokens, double attentionPairs) {
    return prefillBaseMs + prefillPerTokenMs * tokens + prefillAttentionMs * attentionPairs;
  }

  /** A decode step for {@code batch} sequences holding {@code contextTokens} in all. */
  public double decodeStepMs(int batch, long contextTokens) {
    return decodeBaseMs + decodePerSequenceMs * batch + decodePerContextTokenMs * contextTokens;
  }

  /** Time to move the KV of {@code tokens} tokens. */
  public double transferMs(long tokens) {
    return transferLatencyMs + tokens * kvBytesPerToken / transferBytesPerSecond * 1000;
  }

  /** A prefill node's prompt throughput with full steps of short chunks (attention ignored). */
  public double prefillTokensPerSecond() {
    return prefillBatchTokens * 1000.0 / prefillStepMs(prefillBatchTokens, 0);
  }

  /** KV blocks a sequence of {@code tokens} tokens holds. */
  public long blocksFor(long tokens) {
    return (tokens + kvBlockTokens - 1) / kvBlockTokens;
  }

  private static void positive(String key, double v) {
    if (!(v > 0) || Double.isInfinite(v)) {
      throw new IllegalArgumentException(key + " must be a finite number > 0, got " + v);
    }
  }

  private static void notNegative(String key, double v) {
    if (!(v >= 0) || Double.isInfinite(v)) {
      throw new IllegalArgumentException(key + " must be a finite number >= 0, got " + v);
    }
  }
}
