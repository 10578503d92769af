package dev.pdserve.core.experts;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The byte layout of expert dispatch tensors, shared by the caller ({@link RemoteExperts}) and the
 * shard: hidden states as little-endian float32, partial sums as little-endian float64, row-major.
 */
public final class DispatchCodec {
  private DispatchCodec() {}

  /** {@code count} floats of {@code src} from {@code offset}, little-endian. */
  public static ByteString floats(float[] src, int offset, int count) {
    ByteBuffer b = ByteBuffer.allocate(count * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(src, offset, count);
    return UnsafeByteOperations.unsafeWrap(b.array());
  }

  public static ByteString floats(float[] src) {
    return floats(src, 0, src.length);
  }

  /** Every little-endian float in {@code bytes}; the length must be a multiple of 4. */
  public static float[] toFloats(ByteString bytes) {
    if (bytes.size() % Float.BYTES != 0) {
      throw new IllegalArgumentException(
          "float32 bytes must be a multiple of 4, got " + bytes.size());
    }
    float[] out = new float[bytes.size() / Float.BYTES];
    bytes.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
    return out;
  }

  public static ByteString doubles(double[] src) {
    ByteBuffer b = ByteBuffer.allocate(src.length * Double.BYTES).order(ByteOrder.LITTLE_ENDIAN);
    b.asDoubleBuffer().put(src);
    return UnsafeByteOperations.unsafeWrap(b.array());
  }

  /** Every little-endian double in {@code bytes}; the length must be a multiple of 8. */
  public static double[] toDoubles(ByteString bytes) {
    if (bytes.size() % Double.BYTES != 0) {
      throw new IllegalArgumentException(
          "float64 bytes must be a multiple of 8, got " + bytes.size());
    }
    double[] out = new double[bytes.size() / Double.BYTES];
    bytes.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer().get(out);
    return out;
  }
}
