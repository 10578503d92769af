package dev.pdserve.model.weights;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The vision encoder's tensors: names, dummy weights, checkpoint loading and validation. */
class VisionWeightsTest {
  static final ModelConfig TINY = ModelPresets.get("tiny");

  @Test
  void aVisionModelExpectsTheTowerAndResamplerUnderTheReleaseNames() {
    var expected = WeightNames.expected(TINY);
    assertEquals(32, expected.get("vision_model.patch_embed.proj.weight")[0]);
    assertEquals(588, expected.get("vision_model.patch_embed.proj.weight")[1]);
    assertTrue(expected.containsKey("vision_model.blocks.1.attn.qkv.bias"));
    assertTrue(expected.containsKey("vision_model.ln.bias"));
    long[] temporal = expected.get("model.resampler_model.temporal_linear.0.weight");
    assertEquals(128, temporal[0], "temporal MLP out: 4 × width");
    assertEquals(256, temporal[1], "temporal MLP in: 2 frames × 4 × width");
    assertEquals(64, expected.get("model.resampler_model.mlp.weight")[0], "to the LM width");
    assertTrue(expected.containsKey("model.resampler_model.after_norm.weight"));
    ModelConfig textOnly = TINY.withVision(Optional.empty());
    assertFalse(
        WeightNames.expected(textOnly).keySet().stream().anyMatch(VisionWeightNames::isVision),
        "a text-only model needs no vision tensors");
  }

  @Test
  void parameterCountIsTheTowersOwn() {
    var expected = WeightNames.expected(TINY);
    long counted =
        expected.entrySet().stream()
            .filter(e -> VisionWeightNames.isVision(e.getKey()))
            .mapToLong(
                e -> {
                  long n = 1;
                  for (long d : e.getValue()) {
                    n *= d;
                  }
                  return n;
                })
            .sum();
    assertEquals(counted, TINY.vision().orElseThrow().parameters(TINY.hidden()));
  }

  @Test
  void dummyVisionWeightsAreSeededAndNormsAreNearOne() {
    DummyWeights a = new DummyWeights(TINY, 5);
    DummyWeights b = new DummyWeights(TINY, 5);
    String qkv = "vision_model.blocks.0.attn.qkv.weight";
    assertEquals(a.find(qkv).orElseThrow().get(17), b.find(qkv).orElseThrow().get(17));
    float norm = a.find("vision_model.blocks.0.norm1.weight").orElseThrow().get(3);
    assertTrue(norm > 0.5 && norm < 1.5, "LayerNorm scale near 1, got " + norm);
    float bias = a.find("model.resampler_model.mlp.bias").orElseThrow().get(3);
    assertTrue(Math.abs(bias) < 0.2, "biases small, got " + bias);
  }

  @Test
  void aVisionCheckpointMissingItsTowerIsRefusedNamingIt(@TempDir Path tmp) throws IOException {
    ModelConfig textOnly = TINY.withVision(Optional.empty());
    Path dir =
        TestCheckpoints.write(
            tmp.resolve("ckpt"),
            textOnly,
            new DummyWeights(textOnly, 1),
            TestCheckpoints.Layout.released(TINY, SafetensorsDType.F32));
    // The text-only checkpoint opens as it is ...
    try (ModelDirectory m = ModelDirectory.open(dir)) {
      assertTrue(m.config().vision().isEmpty());
    }
    // ... but not under a config that has a vision_config.
    Files.writeString(dir.resolve(ModelDirectory.CONFIG_FILE), TestCheckpoints.configJson(TINY));
    WeightException e = assertThrows(WeightException.class, () -> ModelDirectory.open(dir));
    assertTrue(
        e.getMessage().contains("missing the vision encoder: none of its")
            && e.getMessage().contains("vision_model.patch_embed.proj.weight")
            && e.getMessage().contains("but the config has a vision_config"),
        e.getMessage());
    assertEquals(1, e.problems().size(), "one line for the whole missing tower: " + e.problems());
  }

  @Test
  void aCheckpointMissingSomeVisionTensorsNamesEach() {
    DummyWeights all = new DummyWeights(TINY, 2);
    WeightSource partial =
        new WeightSource() {
          @Override
          public Optional<FloatTensor> find(String name) {
            return name.startsWith("vision_model.blocks.1.") ? Optional.empty() : all.find(name);
          }

          @Override
          public Optional<long[]> shape(String name) {
            return name.startsWith("vision_model.blocks.1.") ? Optional.empty() : all.shape(name);
          }

          @Override
          public Set<String> names() {
            return all.names();
          }

          @Override
          public String describe() {
            return "partial";
          }
        };
    var problems = WeightValidator.problems(TINY, partial);
    assertEquals(12, problems.size(), problems.toString());
    assertTrue(
        problems.contains("missing tensor vision_model.blocks.1.attn.qkv.weight"),
        problems.toString());
  }

  @Test
  void aCheckpointStoringTheTowerUnderModelVisionModelLoads(@TempDir Path tmp) throws IOException {
    Path dir =
        TestCheckpoints.write(
            tmp.resolve("ckpt"),
            TINY,
            new DummyWeights(TINY, 3),
            TestCheckpoints.Layout.canonical(SafetensorsDType.F32));
    // Rewrite the file with the tower renamed, as transformers' nested-config checkpoints store it.
    Path file = dir.resolve(CheckpointWeights.SINGLE_FILE);
    SafetensorsWriter w = new SafetensorsWriter(SafetensorsDType.F32);
    try (SafetensorsFile f = SafetensorsFile.open(file)) {
      for (String n : f.names()) {
        FloatTensor t = f.read(n);
        String stored = n.startsWith("vision_model.") ? "model." + n : n;
        w.add(stored, t.shape(), t::data);
      }
      w.metadata(f.metadata());
      Path renamed = tmp.resolve("renamed.safetensors");
      w.write(renamed);
      Files.move(renamed, file, StandardCopyOption.REPLACE_EXISTING);
    }
    try (ModelDirectory m = ModelDirectory.open(dir)) {
      FloatTensor qkv = m.weights().find("vision_model.blocks.0.attn.qkv.weight").orElseThrow();
      assertEquals("vision_model.blocks.0.attn.qkv.weight", qkv.name());
      assertEquals(
          new DummyWeights(TINY, 3)
              .find("vision_model.blocks.0.attn.qkv.weight")
              .orElseThrow()
              .get(5),
          qkv.get(5));
      assertFalse(m.weights().ignoredNames().contains("model.vision_model.ln.weight"));
    }
  }
}
