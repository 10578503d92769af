package dev.pdserve.model.weights;

import java.nio.FloatBuffer;
import java.util.Arrays;

/**
 * A named fp32 tensor over a direct, native-order buffer (row-major, linear weights stored {@code
 * [out, in]} as checkpoints store them).
 */
public record FloatTensor(String name, long[] shape, FloatBuffer data) {
  public FloatTensor {
    shape = shape.clone();
    if (!data.isDirect()) {
      throw new IllegalArgumentException("tensor " + name + " must be backed by a direct buffer");
    }
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    if (n != data.capacity()) {
      throw new IllegalArgumentException(
          "tensor "
              + name
              + " has "
              + data.capacity()
              + " values but shape "
              + Arrays.toString(shape)
              + " needs "
              + n);
    }
  }

  public long elements() {
    return data.capacity();
  }

  public float get(int index) {
    return data.get(index);
  }

  public boolean hasShape(long... expected) {
    return Arrays.equals(shape, expected);
  }

  /** Copies the values out (for tests and the float64 reference). */
  public float[] toArray() {
    float[] out = new float[data.capacity()];
    data.duplicate().rewind().get(out);
    return out;
  }

  @Override
  public String toString() {
    return name + Arrays.toString(shape);
  }
}
