package dev.pdserve.model.reference;

import dev.pdserve.model.config.ModelConfig;
import java.util.ArrayList;
import java.util.List;

/**
 * The float64 KV cache of one sequence: per layer, per position, post-RoPE keys and values shaped
 * {@code [kvHead][headDim]}.
 */
public final class KvCache64 {
  private final int kvHeads;
  private final int headDim;
  private final List<List<double[][]>> keys = new ArrayList<>();
  private final List<List<double[][]>> values = new ArrayList<>();

  public KvCache64(ModelConfig cfg) {
    this.kvHeads = cfg.numKvHeads();
    this.headDim = cfg.headDim();
    for (int l = 0; l < cfg.numLayers(); l++) {
      keys.add(new ArrayList<>());
      values.add(new ArrayList<>());
    }
  }

  /**
   * Positions held by every layer (a forward pass in progress may have filled some layers further).
   */
  public int length() {
    int n = Integer.MAX_VALUE;
    for (int l = 0; l < keys.size(); l++) {
      n = Math.min(n, length(l));
    }
    return n;
  }

  public int length(int layer) {
    return keys.get(layer).size();
  }

  public int layers() {
    return keys.size();
  }

  /** Post-RoPE key at {@code position} of {@code layer}: {@code [kvHead][headDim]} (not a copy). */
  public double[][] key(int layer, int position) {
    return keys.get(layer).get(position);
  }

  /** Value at {@code position} of {@code layer}: {@code [kvHead][headDim]} (not a copy). */
  public double[][] value(int layer, int position) {
    return values.get(layer).get(position);
  }

  /** Appends one position's key and value ({@code [kvHead][headDim]} each) to {@code layer}. */
  public void append(int layer, double[][] key, double[][] value) {
    checkShape("key", key);
    checkShape("value", value);
    keys.get(layer).add(key);
    values.get(layer).add(value);
  }

  private void checkShape(String what, double[][] t) {
    if (t.length != kvHeads || t[0].length != headDim) {
      throw new IllegalArgumentException(
          what
              + " must be ["
              + kvHeads
              + "]["
              + headDim
              + "], got ["
              + t.length
              + "]["
              + t[0].length
              + "]");
    }
  }
}
