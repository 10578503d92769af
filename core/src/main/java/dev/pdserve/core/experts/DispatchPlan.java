package dev.pdserve.core.experts;

import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.RoutedBatch;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.Predicate;

/**
 * How one {@link RoutedBatch} is split over expert shards: every (row, slot) goes to exactly one
 * shard hosting its expert ({@link #chooseReplica}); each shard gets the rows that have at least
 * one slot on it, in ascending row order, with {@link ExpertCompute#NO_EXPERT} in the slots it is
 * not to compute. Slices come in shard id order, the order their partial sums are added in.
 */
public final class DispatchPlan {
  /**
   * One shard's share of the batch.
   *
   * @param shardId the shard
   * @param rowIndex for each row sent, its row in the original batch (ascending)
   * @param hn the rows' hidden states, {@code [rows, hidden]}
   * @param group each row's expert group
   * @param expertIds {@code [rows, topK]}, {@link ExpertCompute#NO_EXPERT} where another shard
   *     computes the slot
   * @param weights {@code [rows, topK]}, 0 where the slot is not this shard's
   * @param slots (row, slot) pairs this shard computes, i.e. tokens sent to its experts
   */
  public record Slice(
      String shardId,
      int[] rowIndex,
      float[] hn,
      int[] group,
      int[] expertIds,
      float[] weights,
      int slots) {
    public int rows() {
      return rowIndex.length;
    }
  }

  private final List<Slice> slices;
  private final List<ExpertPlacement.ExpertKey> missing;

  private DispatchPlan(List<Slice> slices, List<ExpertPlacement.ExpertKey> missing) {
    this.slices = slices;
    this.missing = missing;
  }

  public List<Slice> slices() {
    return slices;
  }

  /**
   * Experts of the batch with no usable shard (none placed, or every replica unusable), in (group,
   * expert) order; empty when the plan covers the whole batch. A plan with missing experts is not
   * to be sent.
   */
  public List<ExpertPlacement.ExpertKey> missing() {
    return missing;
  }

  /**
   * The shard that computes an expert listed on {@code replicas} (its placement entry, in
   * preference order): the only one when it is not replicated; otherwise a replica picked by a
   * fixed hash of (layer, group, expert). The choice depends on the expert alone, never on the row
   * or the batch, so every row of one expert goes to the same shard (the expert sees the same rows
   * it would see in-process, which keeps its output bit-identical), while different replicated
   * experts spread over their replicas. It is the same in every process and for every call.
   */
  private static List<String> usableOnes(List<String> replicas, Predicate<String> usable) {
    List<String> out = new ArrayList<>(replicas.size());
    for (String r : replicas) {
      if (usable.test(r)) {
        out.add(r);
      }
    }
    return out;
  }

  public static String chooseReplica(int layer, int group, int expert, List<String> replicas) {
    if (replicas.size() == 1) {
      return replicas.get(0);
    }
    long h =
        layer * 0x9E3779B97F4A7C15L + group * 0xC2B2AE3D27D4EB4FL + expert * 0x165667B19E3779F9L;
    h = (h ^ (h >>> 30)) * 0xBF58476D1CE4E5B9L;
    h = (h ^ (h >>> 27)) * 0x94D049BB133111EBL;
    h = h ^ (h >>> 31);
    return replicas.get((int) Math.floorMod(h, (long) replicas.size()));
  }

  /**
   * Splits {@code batch} by {@code placement}.
   *
   * @throws ExpertDispatchException if some expert of the batch has no shard in the placement
   */
  public static DispatchPlan of(RoutedBatch batch, ExpertPlacement placement) {
    DispatchPlan plan = of(batch, placement, shard -> true);
    if (!plan.missing().isEmpty()) {
      ExpertPlacement.ExpertKey k = plan.missing().get(0);
      throw ExpertDispatchException.unplaced(
          batch.layer(),
          "expert placement v"
              + placement.version()
              + " has no shard for "
              + groupName(k.group())
              + " expert "
              + k.expert()
              + " of layer "
              + k.layer());
    }
    return plan;
  }

  /**
   * As {@link #of(RoutedBatch, ExpertPlacement)}, choosing among the replicas {@code usable}
   * accepts (e.g. registered and not just failed); an expert with no placed or no usable replica is
   * listed in {@link #missing()} instead of throwing (its slots go nowhere).
   */
  public static DispatchPlan of(
      RoutedBatch batch, ExpertPlacement placement, Predicate<String> usable) {
    int rows = batch.rows();
    int k = batch.topK();
    int h = batch.hidden();
    int layer = batch.layer();
    // shard index of every (row, slot); -1 for slots without an expert
    Map<Long, Integer> shardOfExpert = new HashMap<>();
    Map<String, Integer> shardIndex = new TreeMap<>();
    List<String> shardNames = new ArrayList<>();
    int[] slotShard = new int[rows * k];
    TreeSet<ExpertPlacement.ExpertKey> missing = new TreeSet<>();
    for (int r = 0; r < rows; r++) {
      int g = batch.group()[r];
      for (int j = 0; j < k; j++) {
        long id = batch.expertIds()[r * k + j];
        if (id < 0) {
          slotShard[r * k + j] = -1;
          continue;
        }
        long key = ((long) g << 32) | id;
        Integer s = shardOfExpert.get(key);
        if (s == null) {
          if (g < 0 || id > Integer.MAX_VALUE) {
            throw ExpertDispatchException.unplaced(
                layer, "no such expert: group " + g + ", expert " + id + " of layer " + layer);
          }
          List<String> live = usableOnes(placement.shardsFor(layer, g, (int) id), usable);
          if (live.isEmpty()) {
            missing.add(new ExpertPlacement.ExpertKey(layer, g, (int) id));
            shardOfExpert.put(key, -1);
            slotShard[r * k + j] = -1;
            continue;
          }
          String shard = chooseReplica(layer, g, (int) id, live);
          s =
              shardIndex.computeIfAbsent(
                  shard,
                  x -> {
                    shardNames.add(x);
                    return shardNames.size() - 1;
                  });
          shardOfExpert.put(key, s);
        }
        slotShard[r * k + j] = s;
      }
    }
    List<Slice> out = new ArrayList<>();
    for (String shard : shardIndex.keySet()) { // TreeMap: shard id order
      int s = shardIndex.get(shard);
      int n = 0;
      int slots = 0;
      boolean[] uses = new boolean[rows];
      for (int r = 0; r < rows; r++) {
        for (int j = 0; j < k; j++) {
          if (slotShard[r * k + j] == s) {
            uses[r] = true;
            slots++;
          }
        }
        n += uses[r] ? 1 : 0;
      }
      int[] rowIndex = new int[n];
      float[] hn = new float[n * h];
      int[] group = new int[n];
      int[] ids = new int[n * k];
      float[] w = new float[n * k];
      int i = 0;
      for (int r = 0; r < rows; r++) {
        if (!uses[r]) {
          continue;
        }
        rowIndex[i] = r;
        System.arraycopy(batch.hn(), r * h, hn, i * h, h);
        group[i] = batch.group()[r];
        for (int j = 0; j < k; j++) {
          boolean mine = slotShard[r * k + j] == s;
          ids[i * k + j] = mine ? (int) batch.expertIds()[r * k + j] : ExpertCompute.NO_EXPERT;
          w[i * k + j] = mine ? batch.weights()[r * k + j] : 0f;
        }
        i++;
      }
      out.add(new Slice(shard, rowIndex, hn, group, ids, w, slots));
    }
    return new DispatchPlan(Collections.unmodifiableList(out), List.copyOf(missing));
  }

  static String groupName(int g) {
    return switch (g) {
      case ExpertGroup.TEXT -> "text";
      case ExpertGroup.VISION -> "vision";
      default -> "group " + g;
    };
  }
}
