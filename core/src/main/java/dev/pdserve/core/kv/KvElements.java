package dev.pdserve.core.kv;

import dev.pdserve.model.config.KvDtype;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;

/**
 * KV elements of one {@link KvDtype} in a byte buffer (little-endian, the byte order of Arrow's
 * wire format), written from and read into fp32 arrays. Writing a half dtype rounds to nearest,
 * ties to even, which is exact for values the layer graph already rounded to it; reading widens
 * exactly. Indices are absolute, in elements; the view's position never moves.
 */
public final class KvElements {
  private final KvDtype dtype;
  private final FloatBuffer floats; // fp32 elements, or null
  private final ShortBuffer halves; // 16-bit elements, or null

  private KvElements(KvDtype dtype, ByteBuffer bytes) {
    this.dtype = dtype;
    ByteBuffer le = bytes.duplicate().order(ByteOrder.LITTLE_ENDIAN);
    this.floats = dtype.isHalf() ? null : le.asFloatBuffer();
    this.halves = dtype.isHalf() ? le.asShortBuffer() : null;
  }

  /** Elements of {@code dtype} over {@code bytes} from its position to its limit. */
  public static KvElements over(ByteBuffer bytes, KvDtype dtype) {
    return new KvElements(dtype, bytes);
  }

  public KvDtype dtype() {
    return dtype;
  }

  /** Stores {@code src[offset, offset+count)} as elements {@code [index, index+count)}. */
  public void put(int index, float[] src, int offset, int count) {
    if (halves == null) {
      floats.put(index, src, offset, count);
      return;
    }
    for (int i = 0; i < count; i++) {
      halves.put(index + i, dtype.toBits(src[offset + i]));
    }
  }

  /** Reads elements {@code [index, index+count)} as fp32 into {@code dst[offset, offset+count)}. */
  public void get(int index, float[] dst, int offset, int count) {
    if (halves == null) {
      floats.get(index, dst, offset, count);
      return;
    }
    for (int i = 0; i < count; i++) {
      dst[offset + i] = dtype.fromBits(halves.get(index + i));
    }
  }
}
