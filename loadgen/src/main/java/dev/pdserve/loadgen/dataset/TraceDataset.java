package dev.pdserve.loadgen.dataset;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalDouble;
import java.util.OptionalLong;
import java.util.SplittableRandom;

/**
 * Replays a Mooncake-format trace (JSONL: {@code timestamp} ms, {@code input_length}, {@code
 * output_length}, {@code hash_ids} of 512-token prompt blocks). Prompts are built block by block:
 * equal hash ids give equal token blocks, so the trace's prefix sharing is real. Times are
 * multiplied by {@code --trace-time-scale}; lengths and the block size by {@code
 * --trace-length-scale}. A request that does not fit the context is capped: output to at most half
 * the context, then the prompt to the rest, cut from the end so shared prefixes stay shared.
 */
public final class TraceDataset implements Dataset {
  /** Tokens per hash block in the Mooncake trace. */
  public static final int TRACE_BLOCK_TOKENS = 512;

  private record Entry(double arrival, int input, int output, long[] hashIds) {}

  private final List<Entry> entries = new ArrayList<>();
  private final TokenSpace tokens;
  private final PromptForm form;
  private final long seed;
  private final int blockTokens;
  private final Path path;
  private int capped;

  public TraceDataset(
      DatasetConfig cfg, TokenSpace tokens, PromptForm form, long seed, int maxContext) {
    this.tokens = tokens;
    this.form = form;
    this.seed = seed;
    this.path = cfg.datasetPath();
    this.blockTokens = Math.max(1, (int) Math.round(TRACE_BLOCK_TOKENS * cfg.traceLengthScale()));
    ObjectMapper json = new ObjectMapper();
    try (BufferedReader r = Files.newBufferedReader(path, StandardCharsets.UTF_8)) {
      String line;
      int lineNo = 0;
      while ((line = r.readLine()) != null
          && (cfg.traceLimit() == 0 || entries.size() < cfg.traceLimit())) {
        lineNo++;
        if (line.isBlank()) {
          continue;
        }
        JsonNode n;
        try {
          n = json.readTree(line);
        } catch (IOException e) {
          throw new IllegalArgumentException(
              "--dataset-path " + path + " line " + lineNo + " is not JSON: " + e.getMessage());
        }
        if (!n.has("timestamp") || !n.has("input_length") || !n.has("output_length")) {
          throw new IllegalArgumentException(
              "--dataset-path "
                  + path
                  + " line "
                  + lineNo
                  + " lacks timestamp, input_length or output_length (Mooncake trace format)");
        }
        int in =
            Math.max(1, (int) Math.round(n.get("input_length").asLong() * cfg.traceLengthScale()));
        int out =
            Math.max(1, (int) Math.round(n.get("output_length").asLong() * cfg.traceLengthScale()));
        if (maxContext > 0 && in + out > maxContext) {
          out = Math.min(out, Math.max(1, maxContext / 2));
          in = Math.min(in, maxContext - out);
          capped++;
        }
        JsonNode h = n.path("hash_ids");
        long[] hashes = new long[h.size()];
        for (int i = 0; i < hashes.length; i++) {
          hashes[i] = h.get(i).asLong();
        }
        entries.add(
            new Entry(
                n.get("timestamp").asDouble() / 1000.0 * cfg.traceTimeScale(), in, out, hashes));
      }
    } catch (IOException e) {
      throw new UncheckedIOException(
          "cannot read --dataset-path " + path + ": " + e.getMessage(), e);
    }
    if (entries.isEmpty()) {
      throw new IllegalArgumentException("--dataset-path " + path + " has no trace entries");
    }
  }

  @Override
  public BenchRequest get(long index) {
    Entry e = entries.get((int) Math.floorMod(index, (long) entries.size()));
    int[] ids = new int[e.input];
    int pos = 0;
    for (int b = 0; b < e.hashIds.length && pos < ids.length; b++) {
      int[] block =
          tokens.draw(TokenSpace.random(seed, 3_000_000_000_000L + e.hashIds[b]), blockTokens);
      int n = Math.min(block.length, ids.length - pos);
      System.arraycopy(block, 0, ids, pos, n);
      pos += n;
    }
    if (pos < ids.length) { // more tokens than blocks (rounding): a tail unique to this request
      SplittableRandom rnd =
          TokenSpace.random(seed, 4_000_000_000_000L + Math.floorMod(index, (long) entries.size()));
      int[] tail = tokens.draw(rnd, ids.length - pos);
      System.arraycopy(tail, 0, ids, pos, tail.length);
    }
    return form == PromptForm.TOKEN_IDS
        ? new BenchRequest(index, ids, null, ids.length, e.output, List.of())
        : new BenchRequest(index, null, TokenSpace.render(ids), ids.length, e.output, List.of());
  }

  @Override
  public OptionalLong size() {
    return OptionalLong.of(entries.size());
  }

  @Override
  public OptionalDouble arrivalSeconds(long index) {
    return OptionalDouble.of(
        entries.get((int) Math.floorMod(index, (long) entries.size())).arrival
            - entries.get(0).arrival);
  }

  /** Entries whose lengths were cut to fit the context. */
  public int cappedEntries() {
    return capped;
  }

  /** Tokens per prompt block after length scaling. */
  public int blockTokens() {
    return blockTokens;
  }

  @Override
  public String describe() {
    return "trace("
        + path.getFileName()
        + ", "
        + entries.size()
        + " requests, block "
        + blockTokens
        + " tokens, "
        + capped
        + " capped to the context)";
  }
}
