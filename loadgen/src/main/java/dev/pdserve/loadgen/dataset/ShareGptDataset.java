package dev.pdserve.loadgen.dataset;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * ShareGPT-format conversations (a JSON array of {@code {"conversations": [{"from": "human",
 * "value": ...}, {"from": "gpt", "value": ...}, ...]}}): the first turn is the prompt (sent as
 * text), the second turn's length sets {@code max_tokens} (its UTF-8 bytes / 4, or {@code
 * --sharegpt-output-len}). Conversations with fewer than two turns are skipped, and so are those
 * whose prompt bytes plus output tokens exceed the context (bytes bound the token count of every
 * tokenizer from above). The order is shuffled by the seed; the stream cycles.
 */
public final class ShareGptDataset implements Dataset {
  private final List<BenchRequest> entries;
  private final Path path;

  public ShareGptDataset(DatasetConfig cfg, long seed, int maxContext) {
    this.path = cfg.datasetPath();
    JsonNode root;
    try {
      root = new ObjectMapper().readTree(path.toFile());
    } catch (IOException e) {
      throw new UncheckedIOException(
          "cannot read --dataset-path " + path + ": " + e.getMessage(), e);
    }
    if (root == null || !root.isArray()) {
      throw new IllegalArgumentException(
          "--dataset-path "
              + path
              + " is not a ShareGPT JSON array of {\"conversations\": [...]} objects");
    }
    List<String[]> pairs = new ArrayList<>();
    for (JsonNode conv : root) {
      JsonNode turns =
          conv.has("conversations") ? conv.get("conversations") : conv.get("conversation");
      if (turns == null || !turns.isArray() || turns.size() < 2) {
        continue;
      }
      String prompt = turns.get(0).path("value").asText("");
      String reply = turns.get(1).path("value").asText("");
      if (!prompt.isEmpty()) {
        pairs.add(new String[] {prompt, reply});
      }
    }
    SplittableRandom rnd = TokenSpace.random(seed, -11);
    for (int i = pairs.size() - 1; i > 0; i--) {
      int j = rnd.nextInt(i + 1);
      String[] t = pairs.get(i);
      pairs.set(i, pairs.get(j));
      pairs.set(j, t);
    }
    entries = new ArrayList<>();
    for (String[] p : pairs) {
      int promptBytes = p[0].getBytes(StandardCharsets.UTF_8).length;
      int out =
          cfg.sharegptOutputLen() > 0
              ? cfg.sharegptOutputLen()
              : Math.max(1, p[1].getBytes(StandardCharsets.UTF_8).length / 4);
      if (maxContext > 0 && (long) promptBytes + out > maxContext) {
        continue;
      }
      entries.add(
          new BenchRequest(
              entries.size(), null, p[0], Math.max(1, promptBytes / 4), out, List.of()));
    }
    if (entries.isEmpty()) {
      throw new IllegalArgumentException(
          "--dataset-path "
              + path
              + " has no usable conversation (two or more turns, fitting the context of "
              + maxContext
              + " tokens)");
    }
  }

  @Override
  public BenchRequest get(long index) {
    BenchRequest e = entries.get((int) Math.floorMod(index, (long) entries.size()));
    return new BenchRequest(
        index, null, e.promptText(), e.promptTokens(), e.outputTokens(), List.of());
  }

  public int entries() {
    return entries.size();
  }

  @Override
  public String describe() {
    return "sharegpt(" + path + ", " + entries.size() + " conversations)";
  }
}
