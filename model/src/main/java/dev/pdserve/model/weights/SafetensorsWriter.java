package dev.pdserve.model.weights;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Supplier;

/**
 * Writes one {@code .safetensors} file. Tensors are declared with their shapes first and their data
 * is pulled from a supplier only when it is written, one tensor at a time, so a caller can stream a
 * model of any size. Output is deterministic: tensors in name order, laid end to end in that order,
 * the header padded with spaces so the data section starts 8-byte aligned.
 *
 * <pre>{@code
 * long bytes = new SafetensorsWriter(SafetensorsDType.BF16)
 *     .metadata(Map.of("format", "pt"))
 *     .add(tensor)
 *     .add("lm_head.weight", new long[] {vocab, hidden}, () -> loadHead())
 *     .write(path);
 * }</pre>
 */
public final class SafetensorsWriter {
  private static final ObjectMapper MAPPER = new ObjectMapper();
  private static final int CHUNK_BYTES = 1 << 20;

  private final SafetensorsDType dtype;
  private final Map<String, String> metadata = new LinkedHashMap<>();
  private final Map<String, Entry> entries = new TreeMap<>();

  private record Entry(
      String name,
      SafetensorsDType dtype,
      long[] shape,
      Supplier<ByteBuffer> raw,
      Supplier<FloatBuffer> floats) {
    long elements() {
      long n = 1;
      for (long d : shape) {
        n *= d;
      }
      return n;
    }

    long bytes() {
      return elements() * dtype.bytes();
    }
  }

  /** A writer that stores float tensors as {@code dtype} (F32, BF16 or F16). */
  public SafetensorsWriter(SafetensorsDType dtype) {
    if (!dtype.writableFromFloat()) {
      throw new IllegalArgumentException(
          "cannot write float tensors as " + dtype + "; use F32, BF16 or F16");
    }
    this.dtype = dtype;
  }

  public SafetensorsDType dtype() {
    return dtype;
  }

  /** Adds {@code __metadata__} entries (string to string, as the format requires). */
  public SafetensorsWriter metadata(Map<String, String> entries) {
    metadata.putAll(entries);
    return this;
  }

  /** Adds a tensor held in memory. */
  public SafetensorsWriter add(FloatTensor tensor) {
    FloatBuffer data = tensor.data();
    return add(tensor.name(), tensor.shape(), () -> data);
  }

  /** Adds a tensor whose values are fetched (once) when the file is written. */
  public SafetensorsWriter add(String name, long[] shape, Supplier<FloatBuffer> values) {
    return put(new Entry(name, dtype, shape.clone(), null, values));
  }

  /**
   * Adds a tensor of any safetensors dtype from its raw little-endian bytes, written as given (for
   * checkpoints that carry integer buffers, and for tests of readers).
   */
  public SafetensorsWriter addRaw(
      String name, SafetensorsDType type, long[] shape, ByteBuffer littleEndianBytes) {
    ByteBuffer copy = littleEndianBytes.duplicate();
    Entry e = new Entry(name, type, shape.clone(), () -> copy.duplicate(), null);
    if (copy.remaining() != e.bytes()) {
      throw new IllegalArgumentException(
          "tensor "
              + name
              + ": "
              + type
              + Arrays.toString(shape)
              + " needs "
              + e.bytes()
              + " bytes, got "
              + copy.remaining());
    }
    return put(e);
  }

  /**
   * Adds a tensor of any safetensors dtype whose raw little-endian bytes are fetched (once) when
   * the file is written; their length is checked then.
   */
  public SafetensorsWriter addRaw(
      String name, SafetensorsDType type, long[] shape, Supplier<ByteBuffer> littleEndianBytes) {
    return put(new Entry(name, type, shape.clone(), littleEndianBytes, null));
  }

  private SafetensorsWriter put(Entry e) {
    if (e.name().equals("__metadata__") || e.name().isEmpty()) {
      throw new IllegalArgumentException("'" + e.name() + "' cannot be a tensor name");
    }
    for (long d : e.shape()) {
      if (d < 0) {
        throw new IllegalArgumentException(
            "tensor " + e.name() + " has a negative dimension: " + Arrays.toString(e.shape()));
      }
    }
    if (entries.putIfAbsent(e.name(), e) != null) {
      throw new IllegalArgumentException("tensor " + e.name() + " was added twice");
    }
    return this;
  }

  /** Bytes of tensor data declared so far (what the data section will hold). */
  public long dataBytes() {
    long n = 0;
    for (Entry e : entries.values()) {
      n += e.bytes();
    }
    return n;
  }

  /**
   * Writes the file (through a temporary sibling, moved into place at the end) and returns its size
   * in bytes.
   */
  public long write(Path file) {
    byte[] header = header();
    Path tmp = file.resolveSibling(file.getFileName() + ".partial");
    try {
      long size;
      try (FileChannel ch =
          FileChannel.open(
              tmp,
              StandardOpenOption.CREATE,
              StandardOpenOption.TRUNCATE_EXISTING,
              StandardOpenOption.WRITE)) {
        ByteBuffer len =
            ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length);
        writeFully(ch, len);
        writeFully(ch, ByteBuffer.wrap(header));
        ByteBuffer chunk = ByteBuffer.allocateDirect(CHUNK_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        for (Entry e : entries.values()) {
          if (e.raw() != null) {
            ByteBuffer raw = e.raw().get().duplicate();
            if (raw.remaining() != e.bytes()) {
              throw new IllegalArgumentException(
                  "tensor "
                      + e.name()
                      + ": "
                      + e.dtype()
                      + Arrays.toString(e.shape())
                      + " needs "
                      + e.bytes()
                      + " bytes, got "
                      + raw.remaining());
            }
            writeFully(ch, raw);
          } else {
            writeFloats(ch, e, chunk);
          }
        }
        size = ch.position();
        ch.force(false);
      }
      Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      return size;
    } catch (IOException e) {
      deleteQuietly(tmp);
      throw new UncheckedIOException(
          "cannot write safetensors file " + file + ": " + e.getMessage(), e);
    } catch (RuntimeException e) {
      deleteQuietly(tmp);
      throw e;
    }
  }

  private byte[] header() {
    ObjectNode root = MAPPER.createObjectNode();
    if (!metadata.isEmpty()) {
      ObjectNode meta = root.putObject("__metadata__");
      new TreeMap<>(metadata).forEach(meta::put);
    }
    long offset = 0;
    for (Entry e : entries.values()) {
      ObjectNode node = root.putObject(e.name());
      node.put("dtype", e.dtype().name());
      ArrayNode shape = node.putArray("shape");
      for (long d : e.shape()) {
        shape.add(d);
      }
      long end = offset + e.bytes();
      node.putArray("data_offsets").add(offset).add(end);
      offset = end;
    }
    byte[] json;
    try {
      json = MAPPER.writeValueAsBytes(root);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("cannot encode safetensors header", e);
    }
    int padded = (json.length + 7) & ~7; // 8 + padded is a multiple of 8
    byte[] out = Arrays.copyOf(json, padded);
    Arrays.fill(out, json.length, padded, (byte) ' ');
    return out;
  }

  private static void writeFloats(FileChannel ch, Entry e, ByteBuffer chunk) throws IOException {
    FloatBuffer src = e.floats().get().duplicate();
    src.rewind();
    if (src.remaining() != e.elements()) {
      throw new IllegalArgumentException(
          "tensor "
              + e.name()
              + " has "
              + src.remaining()
              + " values but shape "
              + Arrays.toString(e.shape())
              + " needs "
              + e.elements());
    }
    int per = e.dtype().bytes();
    while (src.hasRemaining()) {
      chunk.clear();
      int n = Math.min(src.remaining(), CHUNK_BYTES / per);
      switch (e.dtype()) {
        case F32:
          chunk
              .asFloatBuffer()
              .put(src.slice().limit(n)); // bulk copy, byte order converted if needed
          chunk.position(n * per);
          src.position(src.position() + n);
          break;
        case BF16:
          for (int i = 0; i < n; i++) {
            chunk.putShort(HalfFloats.floatToBf16(src.get()));
          }
          break;
        case F16:
          for (int i = 0; i < n; i++) {
            chunk.putShort(HalfFloats.floatToF16(src.get()));
          }
          break;
        default:
          throw new IllegalStateException("unreachable: " + e.dtype());
      }
      chunk.flip();
      writeFully(ch, chunk);
    }
  }

  private static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
    while (buf.hasRemaining()) {
      ch.write(buf);
    }
  }

  private static void deleteQuietly(Path p) {
    try {
      Files.deleteIfExists(p);
    } catch (IOException ignored) {
      // the original failure is the one worth reporting
    }
  }
}
