package dev.pdserve.model.weights;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.weights.TestCheckpoints.Layout;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointConverterTest {
  static final ModelConfig TINY = ModelPresets.get("tiny");
  static final DummyWeights DUMMY = new DummyWeights(TINY, 7);

  @TempDir Path tmp;

  @Test
  void f32CheckpointConvertsBitForBitAndReopens() throws IOException {
    Path src =
        TestCheckpoints.write(
            tmp.resolve("src"), TINY, DUMMY, Layout.canonical(SafetensorsDType.F32));
    Path out = tmp.resolve("out");
    ConvertReport report = CheckpointConverter.convert(src, out, ConvertOptions.defaults());

    int expected = WeightNames.expected(TINY).size();
    assertEquals(expected, report.tensorsWritten());
    assertEquals(List.of(), report.skipped());
    assertEquals(Files.size(out.resolve("model.safetensors")), report.bytesWritten());
    assertEquals(
        List.of(out.resolve("model.safetensors"), out.resolve("config.json")), report.files());
    assertArrayEquals(
        Files.readAllBytes(src.resolve("config.json")),
        Files.readAllBytes(out.resolve("config.json")));
    try (ModelDirectory m = ModelDirectory.open(out)) {
      assertEquals(TINY, m.config());
      CheckpointWeightsTest.assertMatchesSource(TINY, DUMMY, m.weights(), SafetensorsDType.F32);
      assertEquals(List.of(), m.weights().ignoredNames());
      assertEquals(SafetensorsDType.F32, m.weights().storedType(WeightNames.EMBED).orElseThrow());
    }
  }

  @Test
  void releasedBf16CheckpointBecomesShardedCanonicalF32() throws IOException {
    Path src =
        TestCheckpoints.write(
            tmp.resolve("src"),
            TINY,
            DUMMY,
            Layout.released(TINY, SafetensorsDType.BF16).withShards(3));
    for (String f : CheckpointConverter.TOKENIZER_FILES) {
      Files.writeString(src.resolve(f), "{\"file\": \"" + f + "\"}");
    }
    Path out = tmp.resolve("out");
    ConvertReport report =
        CheckpointConverter.convert(
            src, out, ConvertOptions.defaults().withMaxShardBytes(2L << 20));

    List<String> skipped = new ArrayList<>(TestCheckpoints.EXTRA_NAMES);
    skipped.add(WeightNames.LM_HEAD);
    skipped.sort(null);
    assertEquals(skipped, report.skipped());
    List<String> shards;
    try (Stream<Path> s = Files.list(out)) {
      shards =
          s.map(p -> p.getFileName().toString())
              .filter(n -> n.endsWith(".safetensors"))
              .sorted()
              .toList();
    }
    assertTrue(shards.size() >= 3, "expected several 2 MiB shards, got " + shards);
    assertEquals(String.format("model-00001-of-%05d.safetensors", shards.size()), shards.get(0));
    assertTrue(Files.exists(out.resolve(CheckpointWeights.INDEX_FILE)));
    for (String f : CheckpointConverter.TOKENIZER_FILES) {
      assertEquals(Files.readString(src.resolve(f)), Files.readString(out.resolve(f)), f);
    }
    long total = 0;
    for (String shard : shards) {
      long size = Files.size(out.resolve(shard));
      assertTrue(size <= (2L << 20) + 64 * 1024, shard + " is " + size + " bytes");
      total += size;
      try (SafetensorsFile f = SafetensorsFile.open(out.resolve(shard))) {
        for (String name : f.names()) {
          assertEquals("F32", f.info(name).orElseThrow().dtype(), name);
        }
        String gate = WeightNames.gate(1, 1);
        if (f.contains(gate)) {
          assertEquals(
              CheckpointWeights.GATES_EXPERTS_HIDDEN,
              f.metadata().get(CheckpointWeights.GATE_LAYOUT_KEY));
        }
      }
    }
    assertEquals(total, report.bytesWritten());

    try (ModelDirectory converted = ModelDirectory.open(out);
        CheckpointWeights original = new CheckpointWeights(src, TINY)) {
      // Same values as the BF16 source, now stored in the engine's layout.
      CheckpointWeightsTest.assertMatchesSource(
          TINY, original, converted.weights(), SafetensorsDType.F32);
      CheckpointWeightsTest.assertMatchesSource(
          TINY, DUMMY, converted.weights(), SafetensorsDType.BF16);
      assertEquals(
          Files.readString(out.resolve("tokenizer.json")),
          Files.readString(converted.tokenizerJson().orElseThrow()));
    }
  }

  @Test
  void refusesANonEmptyOutputUnlessAllowedAndThenReplacesStaleShards() throws IOException {
    Path src =
        TestCheckpoints.write(
            tmp.resolve("src"), TINY, DUMMY, Layout.canonical(SafetensorsDType.F16));
    Path out = Files.createDirectories(tmp.resolve("out"));
    Files.writeString(out.resolve("notes.txt"), "keep me");
    Files.writeString(out.resolve("model-00007-of-00009.safetensors"), "stale");

    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> CheckpointConverter.convert(src, out, ConvertOptions.defaults()));
    assertTrue(e.getMessage().contains("is not empty"), e.getMessage());

    CheckpointConverter.convert(src, out, ConvertOptions.defaults().withOverwrite(true));
    assertFalse(
        Files.exists(out.resolve("model-00007-of-00009.safetensors")), "stale shard survived");
    assertEquals("keep me", Files.readString(out.resolve("notes.txt")));
    try (ModelDirectory m = ModelDirectory.open(out)) {
      CheckpointWeightsTest.assertMatchesSource(TINY, DUMMY, m.weights(), SafetensorsDType.F16);
    }

    e =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                CheckpointConverter.convert(
                    src, src, ConvertOptions.defaults().withOverwrite(true)));
    assertTrue(e.getMessage().contains("is the checkpoint directory"), e.getMessage());
  }

  @Test
  void invalidCheckpointIsRejectedBeforeAnythingIsWritten() {
    String gone = WeightNames.FINAL_NORM;
    Path src =
        TestCheckpoints.write(
            tmp.resolve("src"), TINY, DUMMY, Layout.canonical(SafetensorsDType.F32));
    ModelDirectoryTest.rewrite(
        src.resolve(CheckpointWeights.SINGLE_FILE), t -> t.name().equals(gone) ? null : t);
    Path out = tmp.resolve("out");
    WeightException e =
        assertThrows(
            WeightException.class,
            () -> CheckpointConverter.convert(src, out, ConvertOptions.defaults()));
    assertTrue(e.getMessage().contains("missing tensor " + gone), e.getMessage());
    assertFalse(Files.exists(out));
  }
}
