package dev.pdserve.model.engine;

/**
 * The KV cache of one sequence as the engine sees it: every layer holds the same number of
 * positions, {@link #length()}. A forward step reads the past of each layer, writes the new
 * positions of each layer (layer by layer, so a paged implementation can stream a layer as soon as
 * it is written), then calls {@link #advance}. Layouts are row-major float arrays.
 */
public interface SequenceKv {
  /** Positions stored in every layer. */
  int length();

  /**
   * Copies positions {@code [0, length())} of {@code layer} into {@code k}/{@code v}, laid out
   * {@code [kvHeads][stride][headDim]} from float {@code offset}.
   */
  void read(int layer, float[] k, float[] v, int offset, int stride);

  /**
   * Stores {@code count} new positions, starting at {@link #length()}, of {@code layer} from {@code
   * k}/{@code v} laid out {@code [kvHeads][tq][headDim]} from float {@code offset}.
   */
  void write(int layer, float[] k, float[] v, int offset, int tq, int count);

  /** Marks {@code count} positions, written in every layer, as stored. */
  void advance(int count);
}
