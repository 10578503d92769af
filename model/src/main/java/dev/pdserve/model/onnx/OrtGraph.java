package dev.pdserve.model.onnx;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxTensorLike;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import com.google.protobuf.ByteString;
import dev.pdserve.onnx.GraphProto;
import dev.pdserve.onnx.ModelProto;
import dev.pdserve.onnx.TensorProto;
import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.List;
import java.util.Map;

/**
 * One ONNX Runtime session with its options: built from a {@link ModelProto}, with the graph's
 * declared weights bound to caller-owned tensors (which must outlive this object), or written into
 * the model so the session owns them ({@link #createOwning}). Closes the session and the options
 * exactly once. {@link #run} may be called from several threads.
 */
public final class OrtGraph implements AutoCloseable {
  private final String name;
  private final OrtSession.SessionOptions options;
  private final OrtSession session;
  private boolean closed;

  private OrtGraph(String name, OrtSession.SessionOptions options, OrtSession session) {
    this.name = name;
    this.options = options;
    this.session = session;
  }

  /** Whether ONNX Runtime plans a session's memory pattern (see {@link #create}). */
  public enum MemoryPattern {
    /** Planned after a shape's first run and reused for that shape (ONNX Runtime's default). */
    PLANNED,
    /**
     * Not planned, for a graph whose input shapes change from run to run (an image's patch count):
     * the pattern planned after a shape's first run is allocated beside the arena blocks that run
     * left, which doubles the resident activations from the second run on (measured on the vision
     * tower: docs/PERFORMANCE.md, "Vision encoder").
     */
    OFF
  }

  /**
   * A session for {@code model} with its memory pattern {@linkplain MemoryPattern#PLANNED planned}.
   */
  public static OrtGraph create(
      String name,
      ModelProto model,
      Iterable<String> weightNames,
      Map<String, ? extends OnnxTensorLike> weights,
      OrtRuntime runtime) {
    return create(name, model, weightNames, weights, runtime, MemoryPattern.PLANNED);
  }

  /**
   * Creates a session for {@code model}. Every weight in {@code weightNames} must be present in
   * {@code weights}.
   */
  public static OrtGraph create(
      String name,
      ModelProto model,
      Iterable<String> weightNames,
      Map<String, ? extends OnnxTensorLike> weights,
      OrtRuntime runtime,
      MemoryPattern memoryPattern) {
    OrtSession.SessionOptions options = runtime.newSessionOptions();
    try {
      if (memoryPattern == MemoryPattern.OFF) {
        options.setMemoryPatternOptimization(false);
      }
      for (String w : weightNames) {
        OnnxTensorLike t = weights.get(w);
        if (t == null) {
          throw new IllegalArgumentException(
              "graph " + name + " needs weight " + w + ", which was not supplied");
        }
        options.addInitializer(w, t);
      }
      OrtSession session = runtime.environment().createSession(model.toByteArray(), options);
      return new OrtGraph(name, options, session);
    } catch (OrtException e) {
      options.close();
      throw new IllegalStateException(
          "ONNX Runtime refused graph " + name + ": " + e.getMessage(), e);
    } catch (RuntimeException e) {
      options.close();
      throw e;
    }
  }

  /**
   * Creates a session for {@code model} that owns its weights: the data of every declared weight in
   * {@code data} (little-endian bytes, keyed by weight name) is written into the model, so ONNX
   * Runtime holds the only copy — and, where a kernel prepacks a constant weight, keeps only the
   * packed form. The caller may drop {@code data} once this returns.
   */
  public static OrtGraph createOwning(
      String name, ModelProto model, Map<String, ByteBuffer> data, OrtRuntime runtime) {
    GraphProto.Builder g = model.getGraph().toBuilder();
    int embedded = 0;
    for (int i = 0; i < g.getInitializerCount(); i++) {
      TensorProto t = g.getInitializer(i);
      ByteBuffer bytes = data.get(t.getName());
      if (t.getDataLocation() != TensorProto.DataLocation.EXTERNAL || bytes == null) {
        continue;
      }
      g.setInitializer(
          i,
          t.toBuilder()
              .clearExternalData()
              .setDataLocation(TensorProto.DataLocation.DEFAULT)
              .setRawData(ByteString.copyFrom(bytes.duplicate()))
              .build());
      embedded++;
    }
    if (embedded != data.size()) {
      throw new IllegalArgumentException(
          "graph " + name + " declares " + embedded + " of the " + data.size() + " weights given");
    }
    return create(name, model.toBuilder().setGraph(g).build(), List.of(), Map.of(), runtime);
  }

  public String name() {
    return name;
  }

  /** Runs the graph; the caller closes the result (try-with-resources). */
  public OrtSession.Result run(Map<String, ? extends OnnxTensorLike> inputs) {
    try {
      return session.run(inputs);
    } catch (OrtException e) {
      throw new IllegalStateException("running graph " + name + " failed: " + e.getMessage(), e);
    }
  }

  public static float[] floats(OrtSession.Result r, int index) {
    try {
      OnnxTensor t = (OnnxTensor) r.get(index);
      FloatBuffer fb = t.getFloatBuffer();
      float[] out = new float[fb.remaining()];
      fb.get(out);
      return out;
    } catch (ClassCastException e) {
      throw new IllegalStateException("output " + index + " is not a tensor", e);
    }
  }

  public static long[] longs(OrtSession.Result r, int index) {
    OnnxTensor t = (OnnxTensor) r.get(index);
    LongBuffer lb = t.getLongBuffer();
    long[] out = new long[lb.remaining()];
    lb.get(out);
    return out;
  }

  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    try {
      session.close();
    } catch (OrtException e) {
      throw new IllegalStateException("closing session " + name, e);
    } finally {
      options.close();
    }
  }
}
