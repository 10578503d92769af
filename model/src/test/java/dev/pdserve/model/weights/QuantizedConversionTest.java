package dev.pdserve.model.weights;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.pdserve.model.config.ConfigException;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.QuantizedBuffers;
import dev.pdserve.model.quant.QuantizedMatrix;
import dev.pdserve.model.quant.StoredQuantization;
import dev.pdserve.model.quant.WeightQuantization;
import dev.pdserve.model.weights.TestCheckpoints.Layout;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * {@code pdserve model convert --quantize}: the stored codes, scales and zero points are the bytes
 * quantize-on-load makes from the same checkpoint; the rest stays fp32; the quantization is
 * recorded in every file and in config.json, and a directory that says otherwise is refused.
 */
class QuantizedConversionTest {
  static final ModelConfig TINY = ModelPresets.get("tiny");
  static final DummyWeights DUMMY = new DummyWeights(TINY, 7);
  static final ObjectMapper JSON = new ObjectMapper();

  @TempDir Path tmp;

  private Path source(Layout layout) {
    return TestCheckpoints.write(tmp.resolve("src"), TINY, DUMMY, layout);
  }

  private static ConvertOptions quantized(QuantMode mode, int block) {
    return ConvertOptions.defaults().withQuantization(new WeightQuantization(mode, block));
  }

  @ParameterizedTest
  @EnumSource(
      value = QuantMode.class,
      names = {"INT8", "INT4", "INT2_MIXED"})
  void storedBytesAreExactlyWhatQuantizeOnLoadMakes(QuantMode mode) throws IOException {
    Path src = source(Layout.canonical(SafetensorsDType.F32));
    Path out = tmp.resolve("out");
    WeightQuantization q = WeightQuantization.of(mode);
    ConvertReport report = CheckpointConverter.convert(src, out, quantized(mode, 64));

    Map<String, QuantFormat> formats = QuantizedLayout.formats(TINY, q);
    assertEquals(formats.size(), report.quantizedMatrices());
    assertFalse(formats.isEmpty(), "nothing quantized");
    assertEquals(StoredQuantization.of(q), report.quantization().orElseThrow());

    try (CheckpointWeights original = new CheckpointWeights(src, TINY);
        ModelWeights onLoad = new ModelWeights(TINY, original, OrtRuntime.shared(), q);
        SafetensorsFile f = SafetensorsFile.open(out.resolve(CheckpointWeights.SINGLE_FILE))) {
      assertEquals(StoredQuantization.of(q).metadata(), subMap(f.metadata()));
      int zeroPointTensors = 0;
      for (Map.Entry<String, QuantFormat> e : formats.entrySet()) {
        String base = e.getKey();
        QuantFormat fmt = e.getValue();
        QuantizedMatrix want = onLoad.quantize(base, fmt);
        assertArrayEquals(
            want.codes(), bytes(f.rawBytes(QuantizedLayout.codesName(base))), base + " codes");
        ByteBuffer scales = f.rawBytes(QuantizedLayout.scalesName(base));
        for (int i = 0; i < want.scales().length; i++) {
          assertEquals(
              Float.floatToRawIntBits(want.scales()[i]),
              scales.getInt(i * 4),
              base + " scale " + i);
        }
        if (fmt.zeroPoints()) {
          zeroPointTensors++;
          byte[] zp = bytes(f.rawBytes(QuantizedLayout.zeroPointsName(base)));
          assertEquals(0, zp.length % 4, base + " zero points are not padded to 4 bytes");
          byte[] padded = java.util.Arrays.copyOf(want.zeroPoints(), zp.length);
          assertArrayEquals(padded, zp, base + " zero points");
        } else {
          assertFalse(f.contains(QuantizedLayout.zeroPointsName(base)), base);
        }
        assertFalse(f.contains(base), base + " stored fp32 as well");
      }
      assertEquals(mode != QuantMode.INT8, zeroPointTensors > 0);
      // everything else fp32, bit for bit
      for (String name : WeightNames.expected(TINY).keySet()) {
        if (QuantizedLayout.needsFp32(name, formats, q)) {
          assertArrayEquals(DUMMY.find(name).orElseThrow().toArray(), f.read(name).toArray(), name);
        }
      }
    }

    JsonNode config = JSON.readTree(out.resolve("config.json").toFile());
    JsonNode block = config.get(StoredQuantization.CONFIG_KEY);
    assertEquals("pdserve", block.get("quant_method").asText());
    assertEquals(mode.configName(), block.get("mode").asText());
    assertEquals(64, block.get("block_size").asInt());
    assertEquals(StoredQuantization.FORMAT_VERSION, block.get("format_version").asInt());
    int lastMoe = TINY.numLayers() - 1;
    assertEquals(
        q.bits(TINY, lastMoe, dev.pdserve.model.quant.WeightComponent.ROUTED_EXPERTS),
        block.get("bits").get("routed_experts").get(Integer.toString(lastMoe)).asInt());

    try (ModelDirectory m = ModelDirectory.open(out)) {
      assertEquals(TINY, m.config());
      assertEquals(StoredQuantization.of(q), m.storedQuantization().orElseThrow());
      assertEquals(List.of(), m.weights().ignoredNames());
      String someExpert = WeightNames.expert(TINY, 1, 0, 3, "up_proj");
      assertTrue(m.weights().find(someExpert).isEmpty(), "no fp32 copy of a quantized matrix");
      assertArrayEquals(
          WeightNames.expected(TINY).get(someExpert), m.weights().shape(someExpert).orElseThrow());
      QuantizedBuffers b =
          m.weights().storedQuantized(someExpert, formats.get(someExpert)).orElseThrow();
      assertTrue(b.codes().isDirect() && b.codes().isReadOnly(), "codes are a view of the map");
      assertTrue(b.scales().isReadOnly(), "scales are a view of the mapping (aligned)");
    }
  }

  @Test
  void aShardedBf16ReleaseConvertsWithEachMatrixInOneShard() throws IOException {
    Path src = source(Layout.released(TINY, SafetensorsDType.BF16).withShards(3));
    Path out = tmp.resolve("out");
    ConvertReport report =
        CheckpointConverter.convert(
            src, out, quantized(QuantMode.INT4, 32).withMaxShardBytes(256 << 10));
    List<Path> shards;
    try (Stream<Path> s = Files.list(out)) {
      shards = s.filter(p -> p.toString().endsWith(".safetensors")).sorted().toList();
    }
    assertTrue(shards.size() >= 3, "expected several shards, got " + shards);
    Map<String, Path> where = new HashMap<>();
    for (Path shard : shards) {
      try (SafetensorsFile f = SafetensorsFile.open(shard)) {
        assertEquals("int4", f.metadata().get(StoredQuantization.META_MODE), shard.toString());
        assertEquals("32", f.metadata().get(StoredQuantization.META_BLOCK_SIZE));
        f.names().forEach(n -> where.put(n, shard));
      }
    }
    WeightQuantization q = new WeightQuantization(QuantMode.INT4, 32);
    for (String base : QuantizedLayout.formats(TINY, q).keySet()) {
      Path codes = where.get(QuantizedLayout.codesName(base));
      assertEquals(codes, where.get(QuantizedLayout.scalesName(base)), base);
      assertEquals(codes, where.get(QuantizedLayout.zeroPointsName(base)), base);
    }
    assertEquals(where.size(), report.tensorsWritten());
    try (ModelDirectory m = ModelDirectory.open(out);
        CheckpointWeights original = new CheckpointWeights(src, TINY);
        ModelWeights onLoad = new ModelWeights(TINY, original, OrtRuntime.shared(), q);
        ModelWeights stored = new ModelWeights(TINY, m.weights(), OrtRuntime.shared(), q)) {
      String head = WeightNames.EMBED; // tied: the LM head is the quantized embedding table
      QuantFormat f = QuantizedLayout.formats(TINY, q).get(head);
      QuantizedMatrix a = onLoad.quantize(head, f);
      QuantizedMatrix b = stored.quantize(head, f);
      assertArrayEquals(a.codes(), b.codes());
      assertArrayEquals(a.scales(), b.scales());
      assertArrayEquals(a.zeroPoints(), b.zeroPoints());
    }
  }

  @Test
  void aPreQuantizedCheckpointIsNotConvertedAgain() {
    Path src = source(Layout.canonical(SafetensorsDType.F32));
    Path once = tmp.resolve("once");
    CheckpointConverter.convert(src, once, quantized(QuantMode.INT8, 64));
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                CheckpointConverter.convert(
                    once, tmp.resolve("twice"), quantized(QuantMode.INT4, 64)));
    assertTrue(e.getMessage().contains("already stored quantized int8 (block 64)"), e.getMessage());
  }

  @Test
  void aDirectoryWhoseFilesDoNotHoldWhatItDeclaresIsRefused() throws IOException {
    Path src = source(Layout.canonical(SafetensorsDType.F32));
    Path out = tmp.resolve("out");
    CheckpointConverter.convert(src, out, quantized(QuantMode.INT4, 64));

    // config.json without the block: the files still say int4
    Path config = out.resolve("config.json");
    String withBlock = Files.readString(config);
    Files.copy(
        src.resolve("config.json"), config, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    WeightException e = assertThrows(WeightException.class, () -> ModelDirectory.open(out));
    assertTrue(
        e.getMessage().contains("declares stored quantization none")
            && e.getMessage().contains("record int4 (block 64)"),
        e.getMessage());
    Files.writeString(config, withBlock);

    // a missing part is named
    String gone = QuantizedLayout.scalesName(WeightNames.q(0));
    drop(out.resolve(CheckpointWeights.SINGLE_FILE), gone);
    e = assertThrows(WeightException.class, () -> ModelDirectory.open(out));
    assertTrue(e.getMessage().contains("missing tensor " + gone), e.getMessage());

    // another format version is refused, naming it
    Files.writeString(
        config, withBlock.replaceFirst("\"format_version\"\\s*:\\s*\\d+", "\"format_version\": 9"));
    ConfigException c = assertThrows(ConfigException.class, () -> ModelDirectory.open(out));
    assertTrue(c.getMessage().contains("format version 9"), c.getMessage());
  }

  /** Rewrites {@code file} without tensor {@code name}, every other tensor's bytes as they were. */
  private static void drop(Path file, String name) {
    SafetensorsWriter w = new SafetensorsWriter(SafetensorsDType.F32);
    try (SafetensorsFile f = SafetensorsFile.open(file)) {
      w.metadata(f.metadata());
      for (String n : f.names()) {
        if (!n.equals(name)) {
          SafetensorsFile.TensorInfo info = f.info(n).orElseThrow();
          ByteBuffer copy = ByteBuffer.allocate((int) info.byteLength());
          copy.put(f.rawBytes(n)).flip();
          w.addRaw(n, info.type().orElseThrow(), info.shape(), copy);
        }
      }
      w.write(file);
    }
  }

  private static Map<String, String> subMap(Map<String, String> meta) {
    Map<String, String> m = new java.util.TreeMap<>();
    meta.forEach(
        (k, v) -> {
          if (k.startsWith("pdserve.quantization")) {
            m.put(k, v);
          }
        });
    return m;
  }

  private static byte[] bytes(ByteBuffer b) {
    byte[] out = new byte[b.remaining()];
    b.duplicate().order(ByteOrder.LITTLE_ENDIAN).get(out);
    return out;
  }
}
