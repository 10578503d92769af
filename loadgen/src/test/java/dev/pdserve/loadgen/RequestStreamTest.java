package dev.pdserve.loadgen;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.loadgen.dataset.BenchRequest;
import dev.pdserve.loadgen.dataset.Dataset;
import dev.pdserve.loadgen.dataset.DatasetConfig;
import dev.pdserve.loadgen.dataset.Datasets;
import dev.pdserve.loadgen.dataset.ImageOptions;
import dev.pdserve.loadgen.dataset.PromptForm;
import dev.pdserve.loadgen.dataset.TokenSpace;
import dev.pdserve.loadgen.dataset.TraceDataset;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The request stream is a function of the seed: lengths, token ids and arrival times. */
class RequestStreamTest {
  private static final TokenSpace TOKENS = TokenSpace.forVocab(288);

  /** Everything that defines a stream, flattened for comparison. */
  private static List<String> stream(Dataset ds, long seed, double rate, double burstiness, int n) {
    ArrivalSchedule s = new ArrivalSchedule(rate, burstiness, 0, seed);
    List<String> out = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      BenchRequest r = ds.get(i);
      double at = ds.arrivalSeconds(i).orElse(s.next());
      out.add(
          at
              + "|"
              + r.promptTokens()
              + "|"
              + r.outputTokens()
              + "|"
              + Arrays.toString(r.promptIds())
              + "|"
              + r.promptText());
    }
    return out;
  }

  @Test
  void sameSeedGivesTheSameRandomStreamAndAnotherSeedAnotherOne() {
    DatasetConfig cfg =
        new DatasetConfig("random", 32, 8, 0.5, null, 0, 0, 0, 0, 0, 1, 1, 0, ImageOptions.NONE);
    List<String> a =
        stream(Datasets.open(cfg, TOKENS, PromptForm.TOKEN_IDS, 42, 1024), 42, 20, 1, 200);
    List<String> b =
        stream(Datasets.open(cfg, TOKENS, PromptForm.TOKEN_IDS, 42, 1024), 42, 20, 1, 200);
    List<String> c =
        stream(Datasets.open(cfg, TOKENS, PromptForm.TOKEN_IDS, 43, 1024), 43, 20, 1, 200);
    assertEquals(a, b, "same seed, same stream");
    assertNotEquals(a, c, "another seed, another stream");
    // lengths vary within the range ratio and ids stay in the token space
    Dataset ds = Datasets.open(cfg, TOKENS, PromptForm.TOKEN_IDS, 42, 1024);
    int min = Integer.MAX_VALUE;
    int max = 0;
    for (int i = 0; i < 500; i++) {
      BenchRequest r = ds.get(i);
      assertEquals(r.promptTokens(), r.promptIds().length);
      min = Math.min(min, r.promptTokens());
      max = Math.max(max, r.promptTokens());
      assertTrue(r.outputTokens() >= 4 && r.outputTokens() <= 12, "output " + r.outputTokens());
      assertTrue(Arrays.stream(r.promptIds()).allMatch(t -> t >= 32 && t < 288));
    }
    assertTrue(
        min >= 16 && max <= 48 && max > min, "prompt lengths in [16, 48], got " + min + ".." + max);
    // warm-up requests (negative indices) are not measured requests
    assertFalse(Arrays.equals(ds.get(-1).promptIds(), ds.get(0).promptIds()));
  }

  @Test
  void textFormRendersTheSameIdsAsText() {
    DatasetConfig cfg = DatasetConfig.random(40, 4);
    BenchRequest ids = Datasets.open(cfg, TOKENS, PromptForm.TOKEN_IDS, 1, 0).get(5);
    BenchRequest text = Datasets.open(cfg, TOKENS, PromptForm.TEXT, 1, 0).get(5);
    assertEquals(TokenSpace.render(ids.promptIds()), text.promptText());
    assertEquals(40, text.promptText().length());
  }

  @Test
  void prefixDatasetSharesPrefixesAndIsReproducible() {
    DatasetConfig cfg =
        new DatasetConfig("prefix", 0, 4, 0, null, 0, 3, 5, 20, 6, 1, 1, 0, ImageOptions.NONE);
    Dataset ds = Datasets.open(cfg, TOKENS, PromptForm.TOKEN_IDS, 9, 1024);
    assertEquals(
        stream(ds, 9, 10, 1, 30),
        stream(Datasets.open(cfg, TOKENS, PromptForm.TOKEN_IDS, 9, 1024), 9, 10, 1, 30));
    Map<String, Integer> prefixes = new HashMap<>();
    Set<String> whole = new HashSet<>();
    for (int i = 0; i < 15; i++) { // one full cycle: every prefix/suffix pair once
      int[] p = ds.get(i).promptIds();
      assertEquals(26, p.length);
      prefixes.merge(Arrays.toString(Arrays.copyOf(p, 20)), 1, Integer::sum);
      whole.add(Arrays.toString(p));
    }
    assertEquals(3, prefixes.size(), "3 distinct prefixes");
    assertTrue(
        prefixes.values().stream().allMatch(v -> v == 5), "5 suffixes each: " + prefixes.values());
    assertEquals(15, whole.size(), "every prompt distinct");
  }

  @Test
  void traceReplayBuildsEqualBlocksForEqualHashIdsAndCapsToTheContext(@TempDir Path tmp)
      throws Exception {
    Path trace = tmp.resolve("t.jsonl");
    Files.writeString(
        trace,
        String.join(
                "\n",
                "{\"timestamp\": 0, \"input_length\": 2048, \"output_length\": 100, \"hash_ids\": [0, 1, 2, 3]}",
                "{\"timestamp\": 500, \"input_length\": 1536, \"output_length\": 50, \"hash_ids\": [0, 1, 7]}",
                "{\"timestamp\": 1500, \"input_length\": 100000, \"output_length\": 4000, \"hash_ids\": [9]}")
            + "\n");
    DatasetConfig cfg =
        new DatasetConfig(
            "trace", 0, 0, 0, trace, 0, 0, 0, 0, 0, 0.5, 1.0 / 64, 0, ImageOptions.NONE);
    TraceDataset ds = (TraceDataset) Datasets.open(cfg, TOKENS, PromptForm.TOKEN_IDS, 3, 1024);
    assertEquals(8, ds.blockTokens(), "512 tokens x 1/64");
    BenchRequest a = ds.get(0);
    BenchRequest b = ds.get(1);
    assertEquals(32, a.promptTokens());
    assertEquals(24, b.promptTokens());
    assertEquals(2, a.outputTokens()); // 100/64 rounded
    assertArrayEquals(
        Arrays.copyOf(a.promptIds(), 16),
        Arrays.copyOf(b.promptIds(), 16),
        "hash ids 0,1 shared: the first two blocks are equal");
    assertFalse(
        Arrays.equals(
            Arrays.copyOfRange(a.promptIds(), 16, 24), Arrays.copyOfRange(b.promptIds(), 16, 24)),
        "hash 2 vs 7 differ");
    assertEquals(0.25, ds.arrivalSeconds(1).getAsDouble(), 1e-9, "500 ms x 0.5");
    BenchRequest big = ds.get(2);
    assertTrue(
        big.promptTokens() + big.outputTokens() <= 1024,
        "capped to the context: " + big.promptTokens() + "+" + big.outputTokens());
    assertEquals(1, ds.cappedEntries());
    // same seed, same prompts; another seed, other tokens
    TraceDataset again = (TraceDataset) Datasets.open(cfg, TOKENS, PromptForm.TOKEN_IDS, 3, 1024);
    assertArrayEquals(a.promptIds(), again.get(0).promptIds());
    assertFalse(
        Arrays.equals(
            a.promptIds(),
            Datasets.open(cfg, TOKENS, PromptForm.TOKEN_IDS, 4, 1024).get(0).promptIds()));
  }

  @Test
  void theMooncakeTraceLoads(@TempDir Path tmp) throws IOException {
    Path shared = mooncakeTrace(tmp);
    DatasetConfig cfg =
        new DatasetConfig(
            "trace", 0, 0, 0, shared, 0, 0, 0, 0, 0, 0.01, 0.05, 500, ImageOptions.NONE);
    Dataset ds = Datasets.open(cfg, TOKENS, PromptForm.TOKEN_IDS, 0, 1024);
    assertEquals(500, ds.size().getAsLong());
    for (int i = 0; i < 500; i++) {
      BenchRequest r = ds.get(i);
      assertTrue(r.promptTokens() + r.outputTokens() <= 1024);
    }
  }

  @Test
  void badOptionsAreRefusedWithTheOptionName(@TempDir Path tmp) {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                Datasets.open(
                    DatasetConfig.random(1000, 100), TOKENS, PromptForm.TOKEN_IDS, 0, 1024));
    assertTrue(
        e.getMessage().contains("--input-len 1000") && e.getMessage().contains("1024"),
        e.getMessage());
    e =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                Datasets.open(
                    DatasetConfig.random(10, 10).withName("nope"),
                    TOKENS,
                    PromptForm.TOKEN_IDS,
                    0,
                    1024));
    assertTrue(e.getMessage().contains("--dataset-name"), e.getMessage());
    e =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                Datasets.open(
                    DatasetConfig.random(10, 10).withName("sharegpt"),
                    TOKENS,
                    PromptForm.TEXT,
                    0,
                    1024));
    assertTrue(e.getMessage().contains("--dataset-path"), e.getMessage());
  }

  @Test
  void shareGptUsesFirstTurnsAndSkipsWhatDoesNotFit(@TempDir Path tmp) throws Exception {
    Path f = tmp.resolve("sg.json");
    Files.writeString(
        f,
        "[{\"id\":\"a\",\"conversations\":[{\"from\":\"human\",\"value\":\"Hello there\"},{\"from\":\"gpt\",\"value\":\""
            + "x".repeat(40)
            + "\"}]},"
            + "{\"id\":\"b\",\"conversations\":[{\"from\":\"human\",\"value\":\"only one turn\"}]},"
            + "{\"id\":\"c\",\"conversations\":[{\"from\":\"human\",\"value\":\""
            + "y".repeat(2000)
            + "\"},{\"from\":\"gpt\",\"value\":\"ok\"}]}]");
    DatasetConfig cfg =
        new DatasetConfig("sharegpt", 0, 0, 0, f, 0, 0, 0, 0, 0, 1, 1, 0, ImageOptions.NONE);
    Dataset ds = Datasets.open(cfg, TOKENS, PromptForm.TEXT, 0, 1024);
    BenchRequest r = ds.get(0);
    assertEquals("Hello there", r.promptText());
    assertEquals(10, r.outputTokens(), "40 bytes / 4");
    assertEquals(
        "Hello there", ds.get(7).promptText(), "one usable conversation: the stream cycles");
  }

  /**
   * The shared Mooncake trace when it is next to the checkout, else one of the same format written
   * here (600 requests, 100 ms apart, shared 512-token prefix blocks), so the test always runs.
   */
  static Path mooncakeTrace(Path dir) throws IOException {
    Path shared =
        Path.of(
            System.getProperty("pdserve.shared", "../../shared"),
            "data/traces/mooncake-conversation.jsonl");
    if (Files.isRegularFile(shared)) {
      return shared;
    }
    StringBuilder sb = new StringBuilder();
    Random rnd = new Random(7);
    int nextBlock = 8;
    for (int i = 0; i < 600; i++) {
      int input = 1000 + rnd.nextInt(7000);
      int blocks = (input + 511) / 512;
      StringBuilder ids = new StringBuilder("0");
      for (int b = 1; b < blocks; b++) {
        ids.append(", ").append(b < 3 && i % 2 == 0 ? b : nextBlock++);
      }
      sb.append("{\"timestamp\": ")
          .append(i * 100)
          .append(", \"input_length\": ")
          .append(input)
          .append(", \"output_length\": ")
          .append(1 + rnd.nextInt(800))
          .append(", \"hash_ids\": [")
          .append(ids)
          .append("]}\n");
    }
    Path generated = dir.resolve("mooncake-format.jsonl");
    Files.writeString(generated, sb.toString());
    return generated;
  }
}
