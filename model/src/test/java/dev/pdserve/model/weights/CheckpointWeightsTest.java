package dev.pdserve.model.weights;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.weights.TestCheckpoints.Layout;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class CheckpointWeightsTest {
  static final ModelConfig TINY = ModelPresets.get("tiny");
  static final DummyWeights DUMMY = new DummyWeights(TINY, 7);

  @TempDir Path tmp;

  @ParameterizedTest
  @EnumSource(
      value = SafetensorsDType.class,
      names = {"F32", "BF16", "F16"})
  void releasedVlCheckpointPresentsTheSourceWeights(SafetensorsDType dtype) {
    Path dir = TestCheckpoints.write(tmp, TINY, DUMMY, Layout.released(TINY, dtype));
    try (CheckpointWeights w = new CheckpointWeights(dir, TINY)) {
      assertEquals(List.copyOf(WeightNames.expected(TINY).keySet()), List.copyOf(w.names()));
      assertMatchesSource(TINY, DUMMY, w, dtype);
    }
  }

  @Test
  void shardedCheckpointIsReadThroughItsIndex() {
    Path dir =
        TestCheckpoints.write(
            tmp, TINY, DUMMY, Layout.released(TINY, SafetensorsDType.BF16).withShards(3));
    assertTrue(Files.exists(dir.resolve(CheckpointWeights.INDEX_FILE)));
    assertFalse(Files.exists(dir.resolve(CheckpointWeights.SINGLE_FILE)));
    try (CheckpointWeights w = new CheckpointWeights(dir, TINY)) {
      assertEquals(3, w.files().size());
      assertEquals("model-00002-of-00003.safetensors", w.files().get(1).getFileName().toString());
      assertMatchesSource(TINY, DUMMY, w, SafetensorsDType.BF16);
    }
  }

  @Test
  void vlGatesStoredHiddenByExpertsAreTransposedBack() {
    Path dir = TestCheckpoints.write(tmp, TINY, DUMMY, Layout.released(TINY, SafetensorsDType.F32));
    String gate = WeightNames.gate(1, ExpertGroup.VISION);
    float[] want = DUMMY.find(gate).orElseThrow().toArray();
    int experts = TINY.expertGroups().get(ExpertGroup.VISION).numExperts();
    int hidden = TINY.hidden();
    try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(CheckpointWeights.SINGLE_FILE))) {
      float[] stored = f.read(gate).toArray();
      assertEquals(
          want[3 * hidden + 5],
          stored[5 * experts + 3],
          "the release layout stores gates [hidden, experts]");
    }
    try (CheckpointWeights w = new CheckpointWeights(dir, TINY)) {
      FloatTensor t = w.find(gate).orElseThrow();
      assertArrayEquals(new long[] {experts, hidden}, t.shape());
      SafetensorsFileTest.assertBitsEqual(want, t.toArray(), gate);
    }
  }

  @Test
  void nonSquareGatesAreTransposedByShapeAlone() {
    ModelConfig cfg = withExperts(TINY, 32, 16);
    DummyWeights src = new DummyWeights(cfg, 7);
    Path dir = TestCheckpoints.write(tmp, cfg, src, Layout.released(cfg, SafetensorsDType.F32));
    try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(CheckpointWeights.SINGLE_FILE));
        CheckpointWeights w = new CheckpointWeights(dir, cfg)) {
      assertArrayEquals(new long[] {64, 16}, f.info(WeightNames.gate(2, 1)).orElseThrow().shape());
      assertArrayEquals(new long[] {16, 64}, w.shape(WeightNames.gate(2, 1)).orElseThrow());
      assertMatchesSource(cfg, src, w, SafetensorsDType.F32);
    }
  }

  @Test
  void canonicalVlCheckpointIsNotTransposed() {
    Path dir = TestCheckpoints.write(tmp, TINY, DUMMY, Layout.canonical(SafetensorsDType.F32));
    try (CheckpointWeights w = new CheckpointWeights(dir, TINY)) {
      assertMatchesSource(TINY, DUMMY, w, SafetensorsDType.F32);
    }
  }

  @Test
  void flatCorrectionBiasIsPresentedAsGroupsByExperts() {
    ModelConfig text = TestCheckpoints.textOnly(TINY);
    DummyWeights src = new DummyWeights(text, 7);
    Path dir =
        TestCheckpoints.write(
            tmp.resolve("text"), text, src, Layout.released(text, SafetensorsDType.F32));
    String bias = WeightNames.correctionBias(2);
    try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(CheckpointWeights.SINGLE_FILE));
        CheckpointWeights w = new CheckpointWeights(dir, text)) {
      assertArrayEquals(new long[] {64}, f.info(bias).orElseThrow().shape());
      FloatTensor t = w.find(bias).orElseThrow();
      assertArrayEquals(new long[] {1, 64}, t.shape());
      assertMatchesSource(text, src, w, SafetensorsDType.F32);
    }
    // A VL bias stored flat ([groups × experts]) is reshaped too.
    Path vl =
        TestCheckpoints.write(
            tmp.resolve("vl"), TINY, DUMMY, new Layout(SafetensorsDType.F32, 1, true, true, false));
    try (CheckpointWeights w = new CheckpointWeights(vl, TINY)) {
      assertArrayEquals(new long[] {2, 64}, w.find(bias).orElseThrow().shape());
      SafetensorsFileTest.assertBitsEqual(
          DUMMY.find(bias).orElseThrow().toArray(), w.find(bias).orElseThrow().toArray(), bias);
    }
  }

  @Test
  void extrasTheEngineDoesNotUseAreIgnored() {
    Path dir =
        TestCheckpoints.write(tmp, TINY, DUMMY, Layout.released(TINY, SafetensorsDType.BF16));
    try (CheckpointWeights w = new CheckpointWeights(dir, TINY)) {
      List<String> extras = new ArrayList<>(TestCheckpoints.EXTRA_NAMES);
      extras.add(WeightNames.LM_HEAD); // tied embeddings: the stored head is not used
      extras.sort(null);
      assertEquals(extras, w.ignoredNames());
      for (String e : extras) {
        assertTrue(w.find(e).isEmpty(), e);
        assertFalse(w.names().contains(e), e);
      }
      assertEquals(
          List.of(), WeightValidator.problems(TINY, w), "the NaN-filled extra must not be checked");
    }
  }

  @Test
  void indexNamingAMissingShardIsReported() throws IOException {
    Path dir =
        TestCheckpoints.write(
            tmp, TINY, DUMMY, Layout.released(TINY, SafetensorsDType.BF16).withShards(2));
    Files.delete(dir.resolve("model-00002-of-00002.safetensors"));
    WeightException e = assertThrows(WeightException.class, () -> new CheckpointWeights(dir, TINY));
    assertTrue(
        e.getMessage().contains("names shard model-00002-of-00002.safetensors")
            && e.getMessage().contains("does not exist"),
        e.getMessage());
  }

  @Test
  void indexMappingATensorToTheWrongShardIsReported() throws IOException {
    Path dir =
        TestCheckpoints.write(
            tmp, TINY, DUMMY, Layout.released(TINY, SafetensorsDType.BF16).withShards(2));
    Path index = dir.resolve(CheckpointWeights.INDEX_FILE);
    String json = Files.readString(index);
    Files.writeString(
        index,
        json.replace(
            "\"model.norm.weight\" : \"model-00002-of-00002",
            "\"model.norm.weight\" : \"model-00001-of-00002"));
    WeightException e = assertThrows(WeightException.class, () -> new CheckpointWeights(dir, TINY));
    assertTrue(
        e.getMessage()
            .contains("maps tensor model.norm.weight to shard model-00001-of-00002.safetensors"),
        e.getMessage());
  }

  @Test
  void directoryWithoutWeightsIsReported() throws IOException {
    WeightException e = assertThrows(WeightException.class, () -> new CheckpointWeights(tmp, TINY));
    assertTrue(
        e.getMessage()
            .contains("has no weights: expected model.safetensors or model.safetensors.index.json"),
        e.getMessage());
    Files.writeString(tmp.resolve("a.safetensors"), "");
    e = assertThrows(WeightException.class, () -> new CheckpointWeights(tmp, TINY));
    assertTrue(e.getMessage().contains("found a.safetensors without an index"), e.getMessage());
    e = assertThrows(WeightException.class, () -> new CheckpointWeights(tmp.resolve("gone"), TINY));
    assertTrue(e.getMessage().contains("gone does not exist"), e.getMessage());
  }

  @Test
  void neededTensorOfANonFloatDtypeIsReportedWhenOpening() {
    SafetensorsWriter w = new SafetensorsWriter(SafetensorsDType.F32);
    for (Map.Entry<String, long[]> e : WeightNames.expected(TINY).entrySet()) {
      if (e.getKey().equals(WeightNames.FINAL_NORM)) {
        w.addRaw(
            e.getKey(), SafetensorsDType.I32, e.getValue(), ByteBuffer.allocate(4 * TINY.hidden()));
      } else {
        w.add(DUMMY.find(e.getKey()).orElseThrow());
      }
    }
    w.write(tmp.resolve(CheckpointWeights.SINGLE_FILE));
    WeightException e = assertThrows(WeightException.class, () -> new CheckpointWeights(tmp, TINY));
    assertTrue(
        e.getMessage().contains("tensor model.norm.weight") && e.getMessage().contains("dtype I32"),
        e.getMessage());
  }

  /**
   * Every tensor equals the source's, bit for bit in F32 and after the dtype's rounding otherwise.
   */
  static void assertMatchesSource(
      ModelConfig cfg, WeightSource src, WeightSource got, SafetensorsDType dtype) {
    for (Map.Entry<String, long[]> e : WeightNames.expected(cfg).entrySet()) {
      String name = e.getKey();
      FloatTensor t = got.find(name).orElseThrow(() -> new AssertionError("missing " + name));
      assertArrayEquals(e.getValue(), t.shape(), name);
      assertArrayEquals(e.getValue(), got.shape(name).orElseThrow(), name);
      float[] want = src.find(name).orElseThrow().toArray();
      for (int i = 0; i < want.length; i++) {
        want[i] =
            switch (dtype) {
              case BF16 -> HalfFloats.bf16ToFloat(HalfFloats.floatToBf16(want[i]));
              case F16 -> HalfFloats.f16ToFloat(HalfFloats.floatToF16(want[i]));
              default -> want[i];
            };
      }
      SafetensorsFileTest.assertBitsEqual(want, t.toArray(), name);
    }
  }

  static ModelConfig withExperts(ModelConfig c, int text, int vision) {
    List<ExpertGroup> g = c.expertGroups();
    return new ModelConfig(
        c.name() + "-" + text + "x" + vision,
        c.vocabSize(),
        c.hidden(),
        c.numLayers(),
        c.numHeads(),
        c.numKvHeads(),
        c.headDim(),
        c.denseIntermediate(),
        c.rmsNormEps(),
        c.ropeTheta(),
        c.maxPositions(),
        c.tieEmbeddings(),
        c.layerKinds(),
        List.of(
            new ExpertGroup(
                "text", text, g.get(0).intermediate(), g.get(0).firstLayer(), g.get(0).lastLayer()),
            new ExpertGroup(
                "vision",
                vision,
                g.get(1).intermediate(),
                g.get(1).firstLayer(),
                g.get(1).lastLayer())),
        c.topK(),
        c.numSharedExperts(),
        c.moeNormMin(),
        c.bosId(),
        c.eosId(),
        c.padId(),
        c.freqAllocation(),
        c.vision());
  }
}
