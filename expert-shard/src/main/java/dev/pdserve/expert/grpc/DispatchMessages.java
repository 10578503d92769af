package dev.pdserve.expert.grpc;

import dev.pdserve.core.experts.DispatchCodec;
import dev.pdserve.expert.InvalidDispatchException;
import dev.pdserve.internal.v1.DispatchRequest;
import dev.pdserve.model.engine.RoutedBatch;

/** Wire ↔ domain for expert dispatch: checks the message's sizes agree before building a batch. */
final class DispatchMessages {
  private DispatchMessages() {}

  static RoutedBatch toBatch(DispatchRequest req) {
    int rows = req.getRows();
    int hidden = req.getHidden();
    int k = req.getTopK();
    if (rows < 0) {
      throw new InvalidDispatchException("rows must be >= 0, got " + rows);
    }
    if (hidden < 1) {
      throw new InvalidDispatchException("hidden must be >= 1, got " + hidden);
    }
    if (k < 1) {
      throw new InvalidDispatchException("top_k must be >= 1, got " + k);
    }
    long hnBytes = (long) rows * hidden * Float.BYTES;
    if (req.getHn().size() != hnBytes) {
      throw new InvalidDispatchException(
          "hn has "
              + req.getHn().size()
              + " bytes, expected rows "
              + rows
              + " × hidden "
              + hidden
              + " × 4 = "
              + hnBytes
              + " (little-endian float32)");
    }
    if (req.getGroupCount() != rows) {
      throw new InvalidDispatchException(
          "group has " + req.getGroupCount() + " entries, expected one per row (" + rows + ")");
    }
    long slots = (long) rows * k;
    if (req.getExpertIdsCount() != slots) {
      throw new InvalidDispatchException(
          "expert_ids has "
              + req.getExpertIdsCount()
              + " entries, expected rows "
              + rows
              + " × top_k "
              + k
              + " = "
              + slots);
    }
    if (req.getWeightsCount() != slots) {
      throw new InvalidDispatchException(
          "weights has "
              + req.getWeightsCount()
              + " entries, expected rows "
              + rows
              + " × top_k "
              + k
              + " = "
              + slots);
    }
    int[] group = new int[rows];
    for (int r = 0; r < rows; r++) {
      group[r] = req.getGroup(r);
    }
    long[] ids = new long[(int) slots];
    float[] w = new float[(int) slots];
    for (int i = 0; i < slots; i++) {
      ids[i] = req.getExpertIds(i);
      w[i] = req.getWeights(i);
    }
    return new RoutedBatch(
        req.getLayer(), rows, hidden, k, DispatchCodec.toFloats(req.getHn()), group, ids, w);
  }
}
