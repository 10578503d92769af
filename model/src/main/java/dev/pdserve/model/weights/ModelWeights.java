package dev.pdserve.model.weights;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.quant.BlockQuantizer;
import dev.pdserve.model.quant.GatherLayout;
import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.QuantNames;
import dev.pdserve.model.quant.QuantizedBuffers;
import dev.pdserve.model.quant.QuantizedMatrix;
import dev.pdserve.model.quant.WeightQuantization;
import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Owns the ONNX Runtime tensors over a model's weights. Each tensor wraps the source's direct
 * buffer (no copy), is created on first use after its shape is checked against the config, and is
 * closed exactly once in {@link #close()}. Sessions built with these tensors must be closed first.
 *
 * <p>Over a pre-quantized checkpoint ({@link WeightSource#storedQuantization()}) the quantized
 * tensors are the checkpoint's stored codes, scales and zero points, tensors over views of its
 * memory mapping (no copy, nothing quantized); the quantization asked for must then be the stored
 * one (any compute).
 *
 * <p>A quantized matrix is made (or mapped) once and kept as direct buffers; its tensors are views
 * of them in MatMulNBits' shapes ({@link QuantNames#codes} and the others) or
 * GatherBlockQuantized's ({@link QuantNames#gatherCodes} and the others, {@link GatherLayout}): a
 * tied embedding table's codes serve both the LM head and the lookup. An fp32 embedding table asked
 * for over a checkpoint that stores it only quantized is dequantized from the stored codes.
 */
public final class ModelWeights implements AutoCloseable {
  private final ModelConfig cfg;
  private final WeightSource source;
  private final OrtRuntime runtime;
  private final Map<String, long[]> expected;
  private final WeightQuantization quantization;
  private final Map<String, OnnxTensor> tensors = new ConcurrentHashMap<>();
  private final Map<String, QuantizedBuffers> quantized = new ConcurrentHashMap<>();
  private volatile boolean closed;

  /** Fp32 weights ({@link WeightQuantization#NONE}). */
  public ModelWeights(ModelConfig cfg, WeightSource source, OrtRuntime runtime) {
    this(cfg, source, runtime, WeightQuantization.NONE);
  }

  /**
   * Weights whose linear layers are quantized on load as {@code quantization} says: the graphs
   * built for it ask for derived tensors ({@link QuantNames}), made here from the fp32 (or widened
   * bf16/fp16) checkpoint tensor when first asked for.
   */
  public ModelWeights(
      ModelConfig cfg, WeightSource source, OrtRuntime runtime, WeightQuantization quantization) {
    this.cfg = cfg;
    this.source = source;
    this.runtime = runtime;
    this.expected = WeightNames.expected(cfg);
    this.quantization = quantization;
    source
        .storedQuantization()
        .ifPresent(stored -> stored.requireMatches(quantization, source.describe()));
    if (source instanceof DummyWeights d && d.isLowBit() && !quantization.isQuantized()) {
      throw new IllegalArgumentException(
          "low-bit dummy weights need a quantized mode (--quantization int8, int4 or int2-mixed):"
              + " with none every weight would be fp32");
    }
  }

  /** How the linear weights are stored and computed (every graph built over these must agree). */
  public WeightQuantization quantization() {
    return quantization;
  }

  public ModelConfig config() {
    return cfg;
  }

  public WeightSource source() {
    return source;
  }

  /** The tensor of that canonical name, checked against the config's expected shape. */
  public OnnxTensor tensor(String name) {
    if (closed) {
      throw new IllegalStateException("weights are closed");
    }
    OnnxTensor t = tensors.get(name);
    if (t != null) {
      return t;
    }
    synchronized (this) {
      t = tensors.get(name);
      if (t != null) {
        return t;
      }
      Optional<QuantNames.Parsed> q = QuantNames.parse(name);
      if (q.isPresent()) {
        loadQuantized(q.get());
        t = tensors.get(name);
        if (t == null) {
          throw new IllegalArgumentException("no quantized tensor " + name);
        }
        return t;
      }
      t = load(name);
      tensors.put(name, t);
      return t;
    }
  }

  /**
   * The source tensor of that canonical name, checked against the config's expected shape, NOT kept
   * here: for callers that hand the data to a session that owns it (routed experts).
   */
  public FloatTensor sourceTensor(String name) {
    if (closed) {
      throw new IllegalStateException("weights are closed");
    }
    return checked(name);
  }

  /**
   * The matrix {@code base} quantized in {@code f}, from the source, NOT kept here (see {@link
   * #sourceTensor}).
   */
  public QuantizedMatrix quantize(String base, QuantFormat f) {
    if (storesQuantized()) {
      Optional<QuantizedBuffers> b = stored(base, f);
      if (b.isPresent()) {
        return b.get().toMatrix();
      }
      // not stored quantized (an untied embedding table of format version 1): quantize its fp32
    }
    if (source instanceof DummyWeights d && d.isLowBit()) {
      if (closed) {
        throw new IllegalStateException("weights are closed");
      }
      QuantizedMatrix m = d.quantized(base, f);
      long[] want = expected.get(base);
      if (want == null || want[0] != m.n() || want[1] != m.k()) {
        throw new IllegalArgumentException("unexpected weight " + base + " for " + cfg.name());
      }
      return m;
    }
    FloatTensor t = sourceTensor(base);
    long[] shape = t.shape();
    if (shape.length != 2) {
      throw new IllegalArgumentException("cannot quantize " + t + ": not a matrix");
    }
    FloatBuffer data = t.data().duplicate().rewind();
    int n = (int) shape[0];
    int k = (int) shape[1];
    // the same bytes either way; one large table (an embedding) is spread over the cores
    return (long) n * k >= PARALLEL_VALUES
        ? BlockQuantizer.quantizeInParallel(data, n, k, f)
        : BlockQuantizer.quantize(data, n, k, f);
  }

  /** Matrices of at least this many values are quantized over every core. */
  private static final long PARALLEL_VALUES = 1L << 22;

  /**
   * Whether the source stores the quantized matrices (a pre-quantized checkpoint): their tensors
   * ({@link #tensor} of {@link QuantNames}) are then views of its mapping, and nothing is
   * quantized.
   */
  public boolean storesQuantized() {
    return source.storedQuantization().isPresent();
  }

  /** The stored parts of {@code base} in {@code f}, or empty when the source does not store it. */
  private Optional<QuantizedBuffers> stored(String base, QuantFormat f) {
    if (closed) {
      throw new IllegalStateException("weights are closed");
    }
    long[] want = expected.get(base);
    Optional<QuantizedBuffers> b = source.storedQuantized(base, f);
    if (b.isPresent() && (want == null || want[0] != b.get().n() || want[1] != b.get().k())) {
      throw new IllegalArgumentException("unexpected weight " + base + " for " + cfg.name());
    }
    return b;
  }

  /**
   * The parts of {@code base} in {@code f} as direct buffers, made once: views of a pre-quantized
   * checkpoint's mapping, or the matrix quantized now ({@link #quantize}) copied into direct
   * buffers.
   */
  private QuantizedBuffers buffers(String base, QuantFormat f) {
    String key = base + QuantNames.SEP + f.tag();
    QuantizedBuffers b = quantized.get(key);
    if (b == null) {
      b =
          (storesQuantized() ? stored(base, f) : Optional.<QuantizedBuffers>empty())
              .orElseGet(() -> QuantizedBuffers.direct(quantize(base, f)));
      quantized.put(key, b);
    }
    return b;
  }

  /**
   * Keeps tensors of the base weight of {@code q} in the layout of the part asked for: views of the
   * stored parts of a pre-quantized checkpoint, or of its codes, scales and zero points quantized
   * now (once for both layouts).
   */
  private void loadQuantized(QuantNames.Parsed q) {
    QuantFormat f = q.format();
    String base = q.base();
    QuantizedBuffers b = buffers(base, f);
    int n = b.n();
    int k = b.k();
    if (q.isGatherLayout()) {
      tensors.put(
          QuantNames.gatherCodes(base, f), uint8View(b.codes(), GatherLayout.codesShape(n, k, f)));
      tensors.put(
          QuantNames.gatherScales(base, f),
          runtime.floatTensor(b.scales().duplicate(), GatherLayout.scalesShape(n, k, f)));
      if (f.zeroPoints()) {
        tensors.put(
            QuantNames.gatherZeroPoints(base, f),
            uint8View(
                GatherLayout.zeroPoints(b.zeroPoints(), n, k, f),
                GatherLayout.zeroPointsShape(n, k, f)));
      }
      return;
    }
    tensors.put(QuantNames.codes(base, f), uint8View(b.codes(), n, f.blocks(k), f.blobBytes()));
    tensors.put(
        QuantNames.scales(base, f),
        runtime.floatTensor(b.scales().duplicate(), b.scales().remaining()));
    if (f.zeroPoints()) {
      tensors.put(
          QuantNames.zeroPoints(base, f), uint8View(b.zeroPoints(), b.zeroPoints().remaining()));
    }
  }

  /** A uint8 tensor over {@code direct} itself (ONNX Runtime reads it in place, no copy). */
  private OnnxTensor uint8View(ByteBuffer direct, long... shape) {
    try {
      return OnnxTensor.createTensor(
          runtime.environment(), direct.duplicate(), shape, OnnxJavaType.UINT8);
    } catch (OrtException e) {
      throw new IllegalStateException("cannot create a uint8 tensor: " + e.getMessage(), e);
    }
  }

  /** Names of the tensors held now (for diagnostics and tests: what a load made resident). */
  public java.util.Set<String> heldTensors() {
    return java.util.Set.copyOf(tensors.keySet());
  }

  /** Tensors for every weight a graph declares, keyed by name. */
  public Map<String, OnnxTensor> forGraph(Iterable<String> names) {
    Map<String, OnnxTensor> out = new LinkedHashMap<>();
    for (String n : names) {
      out.put(n, tensor(n));
    }
    return out;
  }

  private OnnxTensor load(String name) {
    int cut = name.indexOf(WeightNames.ROW);
    if (cut >= 0) {
      return loadRow(
          name,
          name.substring(0, cut),
          Integer.parseInt(name.substring(cut + WeightNames.ROW.length())));
    }
    if (name.equals(WeightNames.EMBED) && storesQuantized() && source.shape(name).isPresent()) {
      Optional<FloatTensor> fp32 = source.find(name);
      if (fp32.isEmpty()) {
        return dequantizedTable(name);
      }
    }
    FloatTensor t = checked(name);
    return runtime.floatTensor(t.data().duplicate().rewind(), t.shape());
  }

  /**
   * The fp32 table {@code name} of a pre-quantized checkpoint that stores it only quantized (format
   * version 2), dequantized from the stored codes: for a configuration that gathers the embeddings
   * in fp32 ({@link WeightQuantization#quantizeEmbeddings()} false).
   */
  private OnnxTensor dequantizedTable(String name) {
    WeightQuantization stored = source.storedQuantization().orElseThrow().weights();
    QuantFormat f = QuantizedLayout.formats(cfg, stored).get(name);
    if (f == null) {
      throw new WeightException("missing tensor " + name + " in " + source.describe());
    }
    QuantizedBuffers b =
        stored(name, f)
            .orElseThrow(
                () -> new WeightException("missing tensor " + name + " in " + source.describe()));
    return runtime.floatTensor(b.dequantize(), b.n(), b.k());
  }

  /** A row of a 2-D weight, viewing the same memory. */
  private OnnxTensor loadRow(String name, String base, int row) {
    FloatTensor t = checked(base);
    long[] shape = t.shape();
    if (shape.length != 2 || row < 0 || row >= shape[0]) {
      throw new IllegalArgumentException("no row " + row + " in tensor " + t);
    }
    int width = (int) shape[1];
    int used = width;
    if (base.endsWith("e_score_correction_bias")) {
      used = cfg.expertGroups().get(row).numExperts();
    }
    FloatBuffer view = t.data().duplicate().position(row * width).limit(row * width + used).slice();
    return runtime.floatTensor(view, used);
  }

  private FloatTensor checked(String name) {
    long[] shape = expected.get(name);
    if (shape == null) {
      throw new IllegalArgumentException("tensor " + name + " is not part of model " + cfg.name());
    }
    FloatTensor t =
        source
            .find(name)
            .orElseThrow(
                () -> new WeightException("missing tensor " + name + " in " + source.describe()));
    if (!t.hasShape(shape)) {
      throw new WeightException(
          "tensor "
              + name
              + " has shape "
              + Arrays.toString(t.shape())
              + ", expected "
              + Arrays.toString(shape));
    }
    return t;
  }

  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    tensors.values().forEach(OnnxTensor::close);
    tensors.clear();
    quantized.clear();
  }
}
