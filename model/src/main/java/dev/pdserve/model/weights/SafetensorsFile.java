package dev.pdserve.model.weights;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.nio.MappedByteBuffer;
import java.nio.ShortBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * One {@code .safetensors} file, memory-mapped. The header is parsed and validated when the file is
 * opened (length, JSON, dtypes, shapes, offsets inside the data section and consistent with dtype ×
 * shape, no two tensors overlapping); tensor data is mapped region by region when read, so files of
 * any size open in constant memory and a tensor costs only the pages it touches.
 *
 * <p>{@link #read} returns fp32: an F32 tensor whose data is 4-byte aligned is a zero-copy view of
 * the mapping (on a little-endian machine); F16, BF16 and F64 are converted into a new direct
 * buffer. Zero-copy views are read-only (ORT reads them in place). Buffers returned stay valid
 * after {@link #close()}: a mapping lives until its last buffer is collected.
 */
public final class SafetensorsFile implements AutoCloseable {
  /** The format caps the header at 100 MB. */
  static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;

  /**
   * One tensor's header entry.
   *
   * @param dtype the header's dtype string ("BF16"); {@link #type()} parses it
   * @param begin first byte, relative to the start of the data section
   * @param end one past the last byte, relative to the start of the data section
   */
  public record TensorInfo(String name, String dtype, long[] shape, long begin, long end) {
    public TensorInfo {
      shape = shape.clone();
    }

    @Override
    public long[] shape() {
      return shape.clone();
    }

    public Optional<SafetensorsDType> type() {
      return SafetensorsDType.byName(dtype);
    }

    public long elements() {
      long n = 1;
      for (long d : shape) {
        n *= d;
      }
      return n;
    }

    public long byteLength() {
      return end - begin;
    }

    @Override
    public String toString() {
      return name + " " + dtype + Arrays.toString(shape);
    }
  }

  private final Path path;
  private final FileChannel channel;
  private final long dataStart;
  private final Map<String, TensorInfo> tensors;
  private final Map<String, String> metadata;

  private SafetensorsFile(
      Path path,
      FileChannel channel,
      long dataStart,
      Map<String, TensorInfo> tensors,
      Map<String, String> metadata) {
    this.path = path;
    this.channel = channel;
    this.dataStart = dataStart;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  /**
   * Opens and validates {@code file}.
   *
   * @throws WeightException if the file is missing or its header is corrupt (the message names the
   *     file and, where there is one, the tensor)
   * @throws UncheckedIOException if the file cannot be read
   */
  public static SafetensorsFile open(Path file) {
    FileChannel ch;
    try {
      ch = FileChannel.open(file, StandardOpenOption.READ);
    } catch (NoSuchFileException e) {
      throw new WeightException("safetensors file " + file + " does not exist");
    } catch (IOException e) {
      throw new UncheckedIOException(
          "cannot open safetensors file " + file + ": " + e.getMessage(), e);
    }
    try {
      return parse(file, ch);
    } catch (RuntimeException e) {
      closeQuietly(ch, e);
      throw e;
    }
  }

  private static SafetensorsFile parse(Path file, FileChannel ch) {
    try {
      long size = ch.size();
      if (size < 8) {
        throw corrupt(file, "is " + size + " bytes, too short for the 8-byte header length");
      }
      ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
      readFully(ch, lenBuf, 0);
      long headerLen = lenBuf.getLong(0);
      if (headerLen < 2 || headerLen > MAX_HEADER_BYTES) {
        throw corrupt(
            file,
            "declares a header of " + headerLen + " bytes (must be 2.." + MAX_HEADER_BYTES + ")");
      }
      if (8 + headerLen > size) {
        throw corrupt(
            file,
            "declares a header of "
                + headerLen
                + " bytes but holds only "
                + (size - 8)
                + " bytes after the length (truncated?)");
      }
      ByteBuffer headerBuf = ByteBuffer.allocate((int) headerLen);
      readFully(ch, headerBuf, 8);
      String json = new String(headerBuf.array(), StandardCharsets.UTF_8);
      long dataStart = 8 + headerLen;
      SafetensorsHeader header = SafetensorsHeader.parse(file, json, size - dataStart);
      return new SafetensorsFile(file, ch, dataStart, header.tensors(), header.metadata());
    } catch (IOException e) {
      throw new UncheckedIOException(
          "cannot read safetensors file " + file + ": " + e.getMessage(), e);
    }
  }

  public Path path() {
    return path;
  }

  /** Tensor names, sorted. */
  public Set<String> names() {
    return tensors.keySet();
  }

  public boolean contains(String name) {
    return tensors.containsKey(name);
  }

  /** The header entry of {@code name}, or empty. */
  public Optional<TensorInfo> info(String name) {
    return Optional.ofNullable(tensors.get(name));
  }

  /** The {@code __metadata__} entries (values that are not strings are given as JSON text). */
  public Map<String, String> metadata() {
    return metadata;
  }

  /**
   * The raw little-endian bytes of {@code name}, a read-only view of the mapping (no copy).
   *
   * @throws WeightException if there is no such tensor or it is 2 GiB or larger
   */
  public ByteBuffer rawBytes(String name) {
    return map(require(name));
  }

  /**
   * {@code name} as fp32 over a direct, native-order buffer: a zero-copy view of the mapping for
   * aligned F32 data on a little-endian machine, otherwise a converted copy (F16 and BF16 exactly,
   * F64 rounded to nearest).
   *
   * @throws WeightException if there is no such tensor, its dtype is not a float type, or it does
   *     not fit one buffer
   */
  public FloatTensor read(String name) {
    TensorInfo info = require(name);
    SafetensorsDType type =
        info.type()
            .filter(SafetensorsDType::readableAsFloat)
            .orElseThrow(
                () ->
                    new WeightException(
                        "tensor "
                            + name
                            + " in "
                            + path
                            + " has dtype "
                            + info.dtype()
                            + ", which cannot be read as float (supported: F32, BF16, F16, F64)"));
    ByteBuffer raw = map(info);
    long n = info.elements();
    if (n * 4 > Integer.MAX_VALUE) {
      throw new WeightException(
          "tensor "
              + name
              + " in "
              + path
              + " has "
              + n
              + " values; one tensor is limited to 2 GiB as fp32");
    }
    FloatBuffer out;
    switch (type) {
      case F32:
        if (ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN
            && (dataStart + info.begin()) % 4 == 0) {
          out = raw.asFloatBuffer(); // zero copy: a view of the mapped pages
        } else {
          out = newFloats(n);
          out.put(raw.asFloatBuffer()).rewind();
        }
        break;
      case BF16:
        {
          out = newFloats(n);
          ShortBuffer src = raw.asShortBuffer();
          for (int i = 0; i < n; i++) {
            out.put(i, HalfFloats.bf16ToFloat(src.get(i)));
          }
          break;
        }
      case F16:
        {
          out = newFloats(n);
          ShortBuffer src = raw.asShortBuffer();
          for (int i = 0; i < n; i++) {
            out.put(i, HalfFloats.f16ToFloat(src.get(i)));
          }
          break;
        }
      case F64:
        {
          out = newFloats(n);
          DoubleBuffer src = raw.asDoubleBuffer();
          for (int i = 0; i < n; i++) {
            out.put(i, (float) src.get(i));
          }
          break;
        }
      default:
        throw new IllegalStateException("unreachable: " + type);
    }
    return new FloatTensor(name, info.shape(), out);
  }

  private TensorInfo require(String name) {
    TensorInfo info = tensors.get(name);
    if (info == null) {
      throw new WeightException("tensor " + name + " is not in " + path);
    }
    return info;
  }

  private ByteBuffer map(TensorInfo info) {
    if (info.byteLength() > Integer.MAX_VALUE) {
      throw new WeightException(
          "tensor "
              + info.name()
              + " in "
              + path
              + " is "
              + info.byteLength()
              + " bytes; tensors of 2 GiB or more are not supported");
    }
    if (info.byteLength() == 0) {
      return ByteBuffer.allocateDirect(0).order(ByteOrder.LITTLE_ENDIAN);
    }
    try {
      MappedByteBuffer m =
          channel.map(FileChannel.MapMode.READ_ONLY, dataStart + info.begin(), info.byteLength());
      return m.order(ByteOrder.LITTLE_ENDIAN);
    } catch (IOException e) {
      throw new UncheckedIOException(
          "cannot map tensor " + info.name() + " of " + path + ": " + e.getMessage(), e);
    }
  }

  private static FloatBuffer newFloats(long n) {
    return ByteBuffer.allocateDirect((int) (n * 4)).order(ByteOrder.nativeOrder()).asFloatBuffer();
  }

  private static void readFully(FileChannel ch, ByteBuffer buf, long position) throws IOException {
    long pos = position;
    while (buf.hasRemaining()) {
      int r = ch.read(buf, pos);
      if (r < 0) {
        throw new IOException("unexpected end of file at byte " + pos);
      }
      pos += r;
    }
  }

  private static WeightException corrupt(Path file, String what) {
    return SafetensorsHeader.corrupt(file, what);
  }

  private static void closeQuietly(FileChannel ch, Exception primary) {
    try {
      ch.close();
    } catch (IOException e) {
      primary.addSuppressed(e);
    }
  }

  @Override
  public void close() {
    try {
      channel.close();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot close " + path + ": " + e.getMessage(), e);
    }
  }

  @Override
  public String toString() {
    return "SafetensorsFile[" + path + ", " + tensors.size() + " tensors]";
  }
}
