package dev.pdserve.model.engine;

import dev.pdserve.model.config.ModelConfig;
import java.util.Arrays;

/** A growable per-sequence KV cache in plain arrays: {@code [layer][kvHead][position·headDim]}. */
public final class ContiguousKv implements SequenceKv {
  private final int layers;
  private final int kvh;
  private final int hd;
  private final float[][][] k;
  private final float[][][] v;
  private int capacity;
  private int length;

  public ContiguousKv(ModelConfig cfg, int initialCapacity) {
    this.layers = cfg.numLayers();
    this.kvh = cfg.numKvHeads();
    this.hd = cfg.headDim();
    this.capacity = Math.max(1, initialCapacity);
    this.k = new float[layers][kvh][capacity * hd];
    this.v = new float[layers][kvh][capacity * hd];
  }

  @Override
  public int length() {
    return length;
  }

  @Override
  public void read(int layer, float[] kDst, float[] vDst, int offset, int stride) {
    for (int h = 0; h < kvh; h++) {
      System.arraycopy(k[layer][h], 0, kDst, offset + h * stride * hd, length * hd);
      System.arraycopy(v[layer][h], 0, vDst, offset + h * stride * hd, length * hd);
    }
  }

  @Override
  public void write(int layer, float[] kSrc, float[] vSrc, int offset, int tq, int count) {
    ensure(length + count);
    for (int h = 0; h < kvh; h++) {
      System.arraycopy(kSrc, offset + h * tq * hd, k[layer][h], length * hd, count * hd);
      System.arraycopy(vSrc, offset + h * tq * hd, v[layer][h], length * hd, count * hd);
    }
  }

  @Override
  public void advance(int count) {
    length += count;
  }

  /** Drops every position at and after {@code newLength}. */
  public void truncate(int newLength) {
    if (newLength < 0 || newLength > length) {
      throw new IllegalArgumentException(
          "cannot truncate " + length + " positions to " + newLength);
    }
    length = newLength;
  }

  private void ensure(int needed) {
    if (needed <= capacity) {
      return;
    }
    int next = Math.max(needed, capacity * 2);
    for (int l = 0; l < layers; l++) {
      for (int h = 0; h < kvh; h++) {
        k[l][h] = Arrays.copyOf(k[l][h], next * hd);
        v[l][h] = Arrays.copyOf(v[l][h], next * hd);
      }
    }
    capacity = next;
  }
}
