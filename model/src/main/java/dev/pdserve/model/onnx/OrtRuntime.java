package dev.pdserve.model.onnx;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtProvider;
import ai.onnxruntime.OrtSession;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.LongBuffer;

/**
 * The process's ONNX Runtime environment plus the session settings pdserve uses: intra-op threads,
 * the execution provider (CPU, or CUDA with the GPU artifact), and weight prepacking.
 */
public final class OrtRuntime {
  private final OrtEnvironment env;
  private final RuntimeOptions opts;

  /** Session settings. {@code intraOpThreads} 0 means ONNX Runtime's default. */
  public record RuntimeOptions(int intraOpThreads, boolean cuda, boolean prepack) {
    public static RuntimeOptions defaults() {
      return new RuntimeOptions(0, false, true);
    }

    public RuntimeOptions {
      if (intraOpThreads < 0) {
        throw new IllegalArgumentException("intra_op_threads must be >= 0, got " + intraOpThreads);
      }
    }
  }

  private static OrtRuntime shared;

  private OrtRuntime(OrtEnvironment env, RuntimeOptions opts) {
    this.env = env;
    this.opts = opts;
  }

  /**
   * The process's runtime. The first call creates ONNX Runtime's environment with one global
   * intra-op thread pool (threads park instead of spinning, which matters when several nodes share
   * a machine); later calls return the same runtime and ignore their options.
   */
  public static synchronized OrtRuntime shared(RuntimeOptions opts) {
    if (shared == null) {
      requireProviders(opts);
      try (OrtEnvironment.ThreadingOptions threading = new OrtEnvironment.ThreadingOptions()) {
        int threads =
            opts.intraOpThreads() > 0
                ? opts.intraOpThreads()
                : Runtime.getRuntime().availableProcessors();
        threading.setGlobalIntraOpNumThreads(threads);
        threading.setGlobalInterOpNumThreads(1);
        threading.setGlobalSpinControl(false);
        OrtEnvironment env =
            OrtEnvironment.getEnvironment(
                ai.onnxruntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING, "pdserve", threading);
        shared = new OrtRuntime(env, opts);
      } catch (OrtException e) {
        throw new IllegalStateException("cannot start ONNX Runtime: " + e.getMessage(), e);
      }
    }
    return shared;
  }

  /**
   * Fails, saying how to get one, when {@code opts} asks for an execution provider this build's
   * ONNX Runtime lacks (CUDA needs the onnxruntime_gpu artifact).
   */
  public static void requireProviders(RuntimeOptions opts) {
    if (opts.cuda() && !OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA)) {
      throw new IllegalStateException(
          "the CUDA execution provider was asked for (pdserve.ort.execution-provider=cuda), but"
              + " this build's ONNX Runtime has only "
              + OrtEnvironment.getAvailableProviders()
              + ": build with mvn -Pgpu (the onnxruntime_gpu artifact) or run the -gpu image");
    }
  }

  /** The shared runtime with default options. */
  public static OrtRuntime shared() {
    return shared(RuntimeOptions.defaults());
  }

  public OrtEnvironment environment() {
    return env;
  }

  public RuntimeOptions options() {
    return opts;
  }

  OrtSession.SessionOptions newSessionOptions() {
    OrtSession.SessionOptions so = new OrtSession.SessionOptions();
    try {
      so.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
      so.disablePerSessionThreads();
      if (!opts.prepack()) {
        so.addConfigEntry("session.disable_prepacking", "1");
      }
      if (opts.cuda()) {
        so.addCUDA(0);
      }
      return so;
    } catch (OrtException e) {
      so.close();
      throw new IllegalStateException(
          "cannot configure an ONNX Runtime session: " + e.getMessage(), e);
    }
  }

  // ---- tensors over direct, native-order buffers (no copy into ORT) ----

  public static FloatBuffer directFloats(int n) {
    return ByteBuffer.allocateDirect(n * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
  }

  public OnnxTensor floatTensor(float[] data, long... shape) {
    FloatBuffer b = directFloats(data.length);
    b.put(data).flip();
    return floatTensor(b, shape);
  }

  public OnnxTensor floatTensor(FloatBuffer direct, long... shape) {
    try {
      return OnnxTensor.createTensor(env, direct, shape);
    } catch (OrtException e) {
      throw new IllegalStateException("cannot create a float tensor: " + e.getMessage(), e);
    }
  }

  public OnnxTensor longTensor(long[] data, long... shape) {
    LongBuffer b =
        ByteBuffer.allocateDirect(data.length * 8).order(ByteOrder.nativeOrder()).asLongBuffer();
    b.put(data).flip();
    try {
      return OnnxTensor.createTensor(env, b, shape);
    } catch (OrtException e) {
      throw new IllegalStateException("cannot create an int64 tensor: " + e.getMessage(), e);
    }
  }

  public OnnxTensor intTensor(int[] data, long... shape) {
    IntBuffer b =
        ByteBuffer.allocateDirect(data.length * 4).order(ByteOrder.nativeOrder()).asIntBuffer();
    b.put(data).flip();
    try {
      return OnnxTensor.createTensor(env, b, shape);
    } catch (OrtException e) {
      throw new IllegalStateException("cannot create an int32 tensor: " + e.getMessage(), e);
    }
  }

  /** A uint8 tensor over a copy of {@code data} in a direct buffer. */
  public OnnxTensor uint8Tensor(byte[] data, long... shape) {
    ByteBuffer b = ByteBuffer.allocateDirect(data.length).order(ByteOrder.nativeOrder());
    b.put(data).flip();
    try {
      return OnnxTensor.createTensor(env, b, shape, ai.onnxruntime.OnnxJavaType.UINT8);
    } catch (OrtException e) {
      throw new IllegalStateException("cannot create a uint8 tensor: " + e.getMessage(), e);
    }
  }

  public OnnxTensor boolTensor(boolean[] data, long... shape) {
    ByteBuffer b = ByteBuffer.allocateDirect(data.length).order(ByteOrder.nativeOrder());
    for (boolean v : data) {
      b.put((byte) (v ? 1 : 0));
    }
    b.flip();
    try {
      return OnnxTensor.createTensor(env, b, shape, ai.onnxruntime.OnnxJavaType.BOOL);
    } catch (OrtException e) {
      throw new IllegalStateException("cannot create a bool tensor: " + e.getMessage(), e);
    }
  }
}
