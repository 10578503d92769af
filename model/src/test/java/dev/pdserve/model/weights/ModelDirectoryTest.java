package dev.pdserve.model.weights;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.ConfigException;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.weights.TestCheckpoints.Layout;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Optional;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelDirectoryTest {
  static final ModelConfig TINY = ModelPresets.get("tiny");
  static final DummyWeights DUMMY = new DummyWeights(TINY, 7);

  @TempDir Path tmp;

  @Test
  void opensAReleasedCheckpointWithItsConfigAndTokenizer() throws IOException {
    Path dir =
        TestCheckpoints.write(
            tmp, TINY, DUMMY, Layout.released(TINY, SafetensorsDType.BF16).withShards(2));
    Files.writeString(dir.resolve("tokenizer.json"), "{}");
    try (ModelDirectory m = ModelDirectory.open(dir)) {
      assertEquals(TINY, m.config());
      assertEquals(Optional.of(dir.resolve("tokenizer.json")), m.tokenizerJson());
      CheckpointWeightsTest.assertMatchesSource(TINY, DUMMY, m.weights(), SafetensorsDType.BF16);
    }
  }

  @Test
  void tokenizerIsOptional() {
    Path dir = TestCheckpoints.write(tmp, TINY, DUMMY, Layout.canonical(SafetensorsDType.F16));
    try (ModelDirectory m = ModelDirectory.open(dir)) {
      assertEquals(Optional.empty(), m.tokenizerJson());
    }
  }

  @Test
  void textOnlyAndFullSizeConfigsReadBackExactly() {
    // TestCheckpoints.configJson checks the round trip itself; these are the shapes others rely on.
    TestCheckpoints.configJson(TestCheckpoints.textOnly(TINY));
    TestCheckpoints.configJson(ModelPresets.get("ernie-4.5-vl-28b-a3b"));
    TestCheckpoints.configJson(ModelPresets.get("ernie-4.5-21b-a3b"));
  }

  @Test
  void missingDirectoryAndConfigAreReported() throws IOException {
    ConfigException e =
        assertThrows(ConfigException.class, () -> ModelDirectory.open(tmp.resolve("absent")));
    assertTrue(e.getMessage().contains("absent does not exist"), e.getMessage());

    Path file = Files.writeString(tmp.resolve("file"), "x");
    e = assertThrows(ConfigException.class, () -> ModelDirectory.open(file));
    assertTrue(e.getMessage().contains("is not a directory"), e.getMessage());

    e = assertThrows(ConfigException.class, () -> ModelDirectory.open(tmp));
    assertTrue(e.getMessage().contains("has no config.json"), e.getMessage());
  }

  @Test
  void malformedConfigJsonIsReported() throws IOException {
    Path dir = TestCheckpoints.write(tmp, TINY, DUMMY, Layout.canonical(SafetensorsDType.F32));
    Files.writeString(dir.resolve("config.json"), "{\"hidden_size\": 64,");
    ConfigException e = assertThrows(ConfigException.class, () -> ModelDirectory.open(dir));
    assertTrue(e.getMessage().contains("config.json is not valid JSON"), e.getMessage());

    Files.writeString(
        dir.resolve("config.json"),
        TestCheckpoints.configJson(TINY).replace("\"hidden_size\"", "\"hidden\""));
    e = assertThrows(ConfigException.class, () -> ModelDirectory.open(dir));
    assertTrue(e.getMessage().contains("required key hidden_size is missing"), e.getMessage());
  }

  @Test
  void missingWeightsAndMissingShardAreReported() throws IOException {
    Files.writeString(tmp.resolve("config.json"), TestCheckpoints.configJson(TINY));
    WeightException e = assertThrows(WeightException.class, () -> ModelDirectory.open(tmp));
    assertTrue(e.getMessage().contains("has no weights"), e.getMessage());

    Path dir =
        TestCheckpoints.write(
            tmp.resolve("sharded"),
            TINY,
            DUMMY,
            Layout.released(TINY, SafetensorsDType.BF16).withShards(3));
    Files.delete(dir.resolve("model-00003-of-00003.safetensors"));
    e = assertThrows(WeightException.class, () -> ModelDirectory.open(dir));
    assertTrue(
        e.getMessage().contains("names shard model-00003-of-00003.safetensors"), e.getMessage());
  }

  @Test
  void missingAndMisShapedTensorsInTheCheckpointAreReported() {
    String gone = "model.layers.3.mlp.experts.70.down_proj.weight";
    String k = WeightNames.k(1);
    Path dir = TestCheckpoints.write(tmp, TINY, DUMMY, Layout.released(TINY, SafetensorsDType.F32));
    rewrite(
        dir.resolve(CheckpointWeights.SINGLE_FILE),
        t -> {
          if (t.name().equals(gone)) {
            return null;
          }
          return t.name().equals(k) ? WeightValidatorTest.filled(k, 0.5f, 64, 64) : t;
        });
    WeightException e = assertThrows(WeightException.class, () -> ModelDirectory.open(dir));
    assertTrue(e.getMessage().contains("missing tensor " + gone), e.getMessage());
    assertTrue(
        e.getMessage().contains("tensor " + k + " has shape [64, 64], expected [32, 64]"),
        e.getMessage());
  }

  @Test
  void corruptWeightsFileIsReported() throws IOException {
    Path dir = TestCheckpoints.write(tmp, TINY, DUMMY, Layout.canonical(SafetensorsDType.F32));
    Path file = dir.resolve(CheckpointWeights.SINGLE_FILE);
    byte[] bytes = Files.readAllBytes(file);
    Files.write(file, Arrays.copyOf(bytes, bytes.length / 2));
    WeightException e = assertThrows(WeightException.class, () -> ModelDirectory.open(dir));
    assertTrue(
        e.getMessage().contains(file.toString()) && e.getMessage().contains("truncated"),
        e.getMessage());
  }

  /**
   * Rewrites a safetensors file in place, tensor by tensor ({@code edit} returns null to drop one).
   */
  static void rewrite(Path file, Function<FloatTensor, FloatTensor> edit) {
    SafetensorsWriter w = new SafetensorsWriter(SafetensorsDType.F32);
    try (SafetensorsFile f = SafetensorsFile.open(file)) {
      w.metadata(f.metadata());
      for (String name : f.names()) {
        FloatTensor t = edit.apply(f.read(name));
        if (t != null) {
          w.add(t);
        }
      }
      w.write(file);
    }
  }
}
