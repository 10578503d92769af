package dev.pdserve.model.weights;

import ai.onnxruntime.OnnxTensor;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.onnx.OrtRuntime;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Owns the ONNX Runtime tensors over a model's weights. Each tensor wraps the source's direct
 * buffer (no copy), is created on first use after its shape is checked against the config, and is
 * closed exactly once in {@link #close()}. Sessions built with these tensors must be closed first.
 */
public final class ModelWeights implements AutoCloseable {
  private final ModelConfig cfg;
  private final WeightSource source;
  private final OrtRuntime runtime;
  private final Map<String, long[]> expected;
  private final Map<String, OnnxTensor> tensors = new ConcurrentHashMap<>();
  private volatile boolean closed;

  public ModelWeights(ModelConfig cfg, WeightSource source, OrtRuntime runtime) {
    this.cfg = cfg;
    this.source = source;
    this.runtime = runtime;
    this.expected = WeightNames.expected(cfg);
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
      return tensors.computeIfAbsent(name, this::load);
    }
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
    FloatTensor t = checked(name);
    return runtime.floatTensor(t.data().duplicate().rewind(), t.shape());
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
  }
}
