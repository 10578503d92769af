package dev.pdserve.model.weights;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.QuantizedBuffers;
import dev.pdserve.model.quant.StoredQuantization;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;

/**
 * The stored parts of a pre-quantized checkpoint's matrices ({@link StoredQuantization}), bound to
 * the files that hold them and checked (dtype, shape) when the checkpoint is opened; read as views
 * of the files' mappings.
 */
final class QuantizedBindings {
  private record Part(SafetensorsFile file, String name) {}

  private record Binding(QuantFormat format, int n, int k, Part codes, Part scales, Part zp) {}

  private final Map<String, Binding> byBase;
  private final Set<String> storedNames;

  private QuantizedBindings(Map<String, Binding> byBase, Set<String> storedNames) {
    this.byBase = byBase;
    this.storedNames = storedNames;
  }

  static QuantizedBindings none() {
    return new QuantizedBindings(Map.of(), Set.of());
  }

  /**
   * Binds every matrix {@code stored} quantizes for {@code cfg}.
   *
   * @throws WeightException listing every part that is missing or has the wrong dtype or shape
   */
  static QuantizedBindings bind(
      ModelConfig cfg, StoredQuantization stored, Map<String, SafetensorsFile> byName) {
    Map<String, long[]> expected = WeightNames.expected(cfg);
    Map<String, Binding> out = new LinkedHashMap<>();
    Set<String> names = new TreeSet<>();
    List<String> problems = new ArrayList<>();
    for (Map.Entry<String, QuantFormat> e :
        QuantizedLayout.formats(cfg, stored.weights()).entrySet()) {
      String base = e.getKey();
      QuantFormat f = e.getValue();
      long[] shape = expected.get(base);
      int n = Math.toIntExact(shape[0]);
      int k = Math.toIntExact(shape[1]);
      if (QuantizedLayout.mayBeStoredFp32(cfg, base)
          && !byName.containsKey(QuantizedLayout.codesName(base))) {
        continue; // format version 1: the table is fp32 only and quantized on load
      }
      String what = " (" + stored.describe() + " " + f.tag() + " of " + base + ")";
      Part codes =
          part(
              byName,
              QuantizedLayout.codesName(base),
              SafetensorsDType.U8,
              QuantizedLayout.codesShape(n, k, f),
              what,
              problems);
      Part scales =
          part(
              byName,
              QuantizedLayout.scalesName(base),
              SafetensorsDType.F32,
              QuantizedLayout.scalesShape(n, k, f),
              what,
              problems);
      Part zp =
          f.zeroPoints()
              ? part(
                  byName,
                  QuantizedLayout.zeroPointsName(base),
                  SafetensorsDType.U8,
                  QuantizedLayout.zeroPointsShape(n, k, f),
                  what,
                  problems)
              : null;
      if (codes != null && scales != null && (zp != null || !f.zeroPoints())) {
        out.put(base, new Binding(f, n, k, codes, scales, zp));
        names.add(codes.name());
        names.add(scales.name());
        if (zp != null) {
          names.add(zp.name());
        }
      }
    }
    if (!problems.isEmpty()) {
      StringBuilder msg =
          new StringBuilder("pre-quantized checkpoint (")
              .append(stored.describe())
              .append(") does not hold what it declares: ")
              .append(problems.size())
              .append(problems.size() == 1 ? " problem" : " problems");
      for (int i = 0; i < Math.min(problems.size(), WeightValidator.MAX_LISTED); i++) {
        msg.append("\n  ").append(problems.get(i));
      }
      if (problems.size() > WeightValidator.MAX_LISTED) {
        msg.append("\n  ... and ")
            .append(problems.size() - WeightValidator.MAX_LISTED)
            .append(" more");
      }
      throw new WeightException(msg.toString(), problems);
    }
    return new QuantizedBindings(out, names);
  }

  private static Part part(
      Map<String, SafetensorsFile> byName,
      String name,
      SafetensorsDType dtype,
      long[] shape,
      String what,
      List<String> problems) {
    SafetensorsFile f = byName.get(name);
    if (f == null) {
      problems.add("missing tensor " + name + what);
      return null;
    }
    SafetensorsFile.TensorInfo info = f.info(name).orElseThrow();
    if (!dtype.name().equals(info.dtype()) || !Arrays.equals(shape, info.shape())) {
      problems.add(
          "tensor "
              + name
              + " in "
              + f.path()
              + " is "
              + info.dtype()
              + Arrays.toString(info.shape())
              + ", expected "
              + dtype
              + Arrays.toString(shape)
              + what);
      return null;
    }
    return new Part(f, name);
  }

  /** The logical {@code [n, k]} shape of a stored matrix, or empty. */
  Optional<long[]> shape(String base) {
    Binding b = byBase.get(base);
    return b == null ? Optional.empty() : Optional.of(new long[] {b.n(), b.k()});
  }

  /** Names of every stored part. */
  Set<String> storedNames() {
    return storedNames;
  }

  /**
   * The parts of {@code base} as views of the mappings (scales copied only if misaligned), or empty
   * when it is not stored quantized.
   *
   * @throws IllegalArgumentException if it is stored in another format than {@code f}
   */
  Optional<QuantizedBuffers> buffers(String base, QuantFormat f) {
    Binding b = byBase.get(base);
    if (b == null) {
      return Optional.empty();
    }
    if (b.format().bits() != f.bits()
        || b.format().blockSize() != f.blockSize()
        || b.format().zeroPoints() != f.zeroPoints()) {
      throw new IllegalArgumentException(
          base + " is stored as " + b.format().tag() + ", not " + f.tag());
    }
    ByteBuffer codes = b.codes().file().rawBytes(b.codes().name());
    FloatBuffer scales = b.scales().file().read(b.scales().name()).data();
    ByteBuffer zp =
        b.zp() == null
            ? ByteBuffer.allocateDirect(0)
            : b.zp()
                .file()
                .rawBytes(b.zp().name())
                .slice(0, (int) QuantizedLayout.zeroPointBytes(b.n(), b.k(), b.format()));
    return Optional.of(
        new QuantizedBuffers(
            b.n(),
            b.k(),
            f,
            codes.order(ByteOrder.nativeOrder()),
            scales,
            zp.order(ByteOrder.nativeOrder())));
  }
}
