package dev.pdserve.model.weights;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsFileTest {
  @TempDir Path tmp;

  private static FloatTensor sample(String name, long... shape) {
    int n = (int) Arrays.stream(shape).reduce(1, (a, b) -> a * b);
    FloatBuffer b = ByteBuffer.allocateDirect(n * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
    Random r = new Random(name.hashCode());
    for (int i = 0; i < n; i++) {
      b.put(i, (float) r.nextGaussian() * 3);
    }
    // Values that stress the conversions: zeros, subnormals, extremes.
    float[] special = {0f, -0f, 1e-6f, -3e-8f, 65504f, 1e30f, 0x1p-24f};
    for (int i = 0; i < Math.min(n, special.length); i++) {
      b.put(i, special[i]);
    }
    return new FloatTensor(name, shape, b);
  }

  private Path writeAll(SafetensorsDType dtype, FloatTensor... tensors) {
    SafetensorsWriter w =
        new SafetensorsWriter(dtype).metadata(Map.of("format", "pt", "note", "test"));
    for (FloatTensor t : tensors) {
      w.add(t);
    }
    Path file = tmp.resolve("t-" + dtype + ".safetensors");
    long size = w.write(file);
    assertEquals(size, file.toFile().length());
    return file;
  }

  @Test
  void f32RoundTripIsBitExactAndDirect() {
    FloatTensor a = sample("a.weight", 3, 5);
    FloatTensor b = sample("b.bias", 7);
    Path file = writeAll(SafetensorsDType.F32, a, b);
    try (SafetensorsFile f = SafetensorsFile.open(file)) {
      assertEquals(List.of("a.weight", "b.bias"), List.copyOf(f.names()));
      assertEquals("test", f.metadata().get("note"));
      for (FloatTensor want : new FloatTensor[] {a, b}) {
        FloatTensor got = f.read(want.name());
        assertArrayEquals(want.shape(), got.shape());
        assertTrue(got.data().isDirect());
        assertEquals(ByteOrder.nativeOrder(), got.data().order());
        assertBitsEqual(want.toArray(), got.toArray(), want.name());
      }
    }
  }

  @Test
  void bf16AndF16RoundTripWithinDtypeRounding() {
    FloatTensor a = sample("x", 4, 33);
    for (SafetensorsDType dt :
        new SafetensorsDType[] {SafetensorsDType.BF16, SafetensorsDType.F16}) {
      Path file = writeAll(dt, a);
      try (SafetensorsFile f = SafetensorsFile.open(file)) {
        assertEquals(dt.name(), f.info("x").orElseThrow().dtype());
        float[] got = f.read("x").toArray();
        float[] want = a.toArray();
        for (int i = 0; i < want.length; i++) {
          float rounded =
              dt == SafetensorsDType.BF16
                  ? HalfFloats.bf16ToFloat(HalfFloats.floatToBf16(want[i]))
                  : HalfFloats.f16ToFloat(HalfFloats.floatToF16(want[i]));
          assertEquals(rounded, got[i], dt + " value " + i);
          double tol = dt == SafetensorsDType.BF16 ? 0x1p-8 : 0x1p-11;
          if (Math.abs(want[i]) > 1e-4 && Math.abs(want[i]) < 65504) {
            assertEquals(
                want[i],
                got[i],
                Math.abs(want[i]) * tol,
                dt + " value " + i + " beyond half an ulp");
          }
        }
      }
    }
  }

  @Test
  void f64IsNarrowedToFloat() {
    ByteBuffer raw = ByteBuffer.allocate(3 * 8).order(ByteOrder.LITTLE_ENDIAN);
    raw.putDouble(1.0 / 3).putDouble(-2.5).putDouble(1e300).flip();
    Path file = tmp.resolve("d.safetensors");
    new SafetensorsWriter(SafetensorsDType.F32)
        .addRaw("d", SafetensorsDType.F64, new long[] {3}, raw)
        .write(file);
    try (SafetensorsFile f = SafetensorsFile.open(file)) {
      assertArrayEquals(
          new float[] {(float) (1.0 / 3), -2.5f, Float.POSITIVE_INFINITY}, f.read("d").toArray());
    }
  }

  @Test
  void outputIsDeterministicAndHeaderIsPaddedTo8Bytes() throws IOException {
    FloatTensor a = sample("zeta", 2, 3);
    FloatTensor b = sample("alpha", 5);
    Path p1 = tmp.resolve("1.safetensors");
    Path p2 = tmp.resolve("2.safetensors");
    new SafetensorsWriter(SafetensorsDType.BF16).add(a).add(b).write(p1);
    new SafetensorsWriter(SafetensorsDType.BF16).add(b).add(a).write(p2);
    byte[] bytes = Files.readAllBytes(p1);
    assertArrayEquals(bytes, Files.readAllBytes(p2), "insertion order changed the file");
    long headerLen = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
    assertEquals(0, (8 + headerLen) % 8, "data section is not 8-byte aligned");
    String header = new String(bytes, 8, (int) headerLen, StandardCharsets.UTF_8);
    assertTrue(header.indexOf("\"alpha\"") < header.indexOf("\"zeta\""), header);
    assertTrue(header.startsWith("{") && header.stripTrailing().endsWith("}"), header);
  }

  @Test
  void misalignedF32DataIsCopiedIntoAnAlignedBuffer() throws IOException {
    String header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}";
    while ((8 + header.length()) % 4 != 2) {
      header += " ";
    }
    Path file = rawFile(header, 0);
    ByteBuffer data =
        ByteBuffer.allocate(12)
            .order(ByteOrder.LITTLE_ENDIAN)
            .putFloat(1.5f)
            .putFloat(-2f)
            .putFloat(3.25f);
    Files.write(file, data.array(), StandardOpenOption.APPEND);
    try (SafetensorsFile f = SafetensorsFile.open(file)) {
      FloatTensor t = f.read("w");
      assertTrue(t.data().isDirect());
      assertArrayEquals(new float[] {1.5f, -2f, 3.25f}, t.toArray());
    }
  }

  @Test
  void unsupportedDtypeIsRejectedNamingTensorAndDtype() {
    ByteBuffer raw = ByteBuffer.allocate(4 * 4).order(ByteOrder.LITTLE_ENDIAN);
    Path file = tmp.resolve("i.safetensors");
    new SafetensorsWriter(SafetensorsDType.F32)
        .addRaw("position_ids", SafetensorsDType.I32, new long[] {4}, raw)
        .write(file);
    try (SafetensorsFile f = SafetensorsFile.open(file)) {
      WeightException e = assertThrows(WeightException.class, () -> f.read("position_ids"));
      assertTrue(
          e.getMessage().contains("tensor position_ids") && e.getMessage().contains("dtype I32"),
          e.getMessage());
      assertEquals(16, f.rawBytes("position_ids").remaining());
    }
  }

  @Test
  void dtypeTheFormatDoesNotKnowOpensButIsNotReadable() throws IOException {
    Path file = rawFile("{\"q\":{\"dtype\":\"Q4_K\",\"shape\":[2],\"data_offsets\":[0,3]}}", 3);
    try (SafetensorsFile f = SafetensorsFile.open(file)) {
      WeightException e = assertThrows(WeightException.class, () -> f.read("q"));
      assertTrue(
          e.getMessage().contains("tensor q") && e.getMessage().contains("dtype Q4_K"),
          e.getMessage());
    }
  }

  @Test
  void missingFileIsNamed() {
    Path file = tmp.resolve("nope.safetensors");
    WeightException e = assertThrows(WeightException.class, () -> SafetensorsFile.open(file));
    assertTrue(
        e.getMessage().contains(file.toString()) && e.getMessage().contains("does not exist"),
        e.getMessage());
  }

  @Test
  void truncatedFileIsRejected() throws IOException {
    Path file = writeAll(SafetensorsDType.F32, sample("w", 16, 16));
    byte[] bytes = Files.readAllBytes(file);
    Files.write(file, Arrays.copyOf(bytes, bytes.length - 100));
    WeightException e = assertThrows(WeightException.class, () -> SafetensorsFile.open(file));
    assertTrue(
        e.getMessage().contains(file.toString())
            && e.getMessage().contains("tensor w")
            && e.getMessage().contains("truncated"),
        e.getMessage());

    Files.write(file, Arrays.copyOf(bytes, 20)); // cut inside the header
    e = assertThrows(WeightException.class, () -> SafetensorsFile.open(file));
    assertTrue(e.getMessage().contains("truncated"), e.getMessage());

    Files.write(file, Arrays.copyOf(bytes, 5));
    e = assertThrows(WeightException.class, () -> SafetensorsFile.open(file));
    assertTrue(e.getMessage().contains("too short"), e.getMessage());
  }

  @Test
  void corruptHeadersAreRejectedWithTheirReason() throws IOException {
    assertCorrupt(
        rawFile("{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 12]}}", 16),
        "tensor w",
        "needs 16");
    assertCorrupt(
        rawFile(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
            12),
        "overlapping tensors a",
        "and b");
    assertCorrupt(
        rawFile("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 4]}}", 8),
        "tensor w",
        "not an ordered range");
    assertCorrupt(
        rawFile("{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4),
        "tensor w",
        "non-negative");
    assertCorrupt(
        rawFile("{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4), "tensor w", "dtype");
    assertCorrupt(rawFile("{\"w\": [1, 2]}", 0), "tensor w", "not a JSON object");
    assertCorrupt(rawFile("{\"w\": {\"dtype\": \"F32\", \"shape\": [1]", 4), "not valid JSON", "");
    assertCorrupt(rawFile("[1, 2, 3]", 0), "not a JSON object", "");
    assertCorrupt(
        rawFile(
            "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
            4),
        "not valid JSON",
        "w");

    Path huge = tmp.resolve("huge.safetensors");
    Files.write(
        huge,
        ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(Long.MAX_VALUE / 2).array());
    assertCorrupt(huge, "declares a header of", "must be");
  }

  private void assertCorrupt(Path file, String part1, String part2) {
    WeightException e =
        assertThrows(WeightException.class, () -> SafetensorsFile.open(file), file.toString());
    String m = e.getMessage();
    assertTrue(m.contains(file.toString()) && m.contains(part1) && m.contains(part2), m);
  }

  private int raws;

  private Path rawFile(String header, int dataBytes) throws IOException {
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(h.length).put(h);
    Path file = tmp.resolve("raw" + (raws++) + ".safetensors");
    Files.write(file, b.array());
    return file;
  }

  static void assertBitsEqual(float[] want, float[] got, String name) {
    assertEquals(want.length, got.length, name + ": length");
    for (int i = 0; i < want.length; i++) {
      if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i])) {
        throw new AssertionError(name + "[" + i + "]: expected " + want[i] + " but got " + got[i]);
      }
    }
  }
}
