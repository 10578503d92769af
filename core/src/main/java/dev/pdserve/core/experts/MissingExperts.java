package dev.pdserve.core.experts;

import dev.pdserve.core.cluster.ExpertPlacement.ExpertKey;
import dev.pdserve.model.config.ExpertGroup;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * The message of a call whose experts have no live shard: the experts, grouped by why, e.g. {@code
 * experts 3, 7 of layer 2 have no live shard (shard e1 left the cluster)}.
 */
final class MissingExperts {
  /** Experts named one by one per reason; beyond that, a count. */
  static final int MAX_LISTED = 16;

  private MissingExperts() {}

  /**
   * @param missing the experts, of one layer, in (group, expert) order
   * @param reason why an expert has no live shard (e.g. {@code shard e1 left the cluster})
   */
  static String describe(int layer, List<ExpertKey> missing, Function<ExpertKey, String> reason) {
    Map<String, List<ExpertKey>> byWhy = new LinkedHashMap<>();
    for (ExpertKey k : missing) {
      byWhy
          .computeIfAbsent(
              groupLabel(k.group()) + "\u0000" + reason.apply(k), x -> new ArrayList<>())
          .add(k);
    }
    List<String> parts = new ArrayList<>();
    byWhy.forEach(
        (key, experts) -> {
          String[] labelAndWhy = key.split("\u0000", 2);
          StringBuilder b = new StringBuilder(labelAndWhy[0]);
          b.append(experts.size() == 1 ? "expert " : "experts ");
          for (int i = 0; i < Math.min(experts.size(), MAX_LISTED); i++) {
            b.append(i == 0 ? "" : ", ").append(experts.get(i).expert());
          }
          if (experts.size() > MAX_LISTED) {
            b.append(" and ").append(experts.size() - MAX_LISTED).append(" more");
          }
          b.append(" of layer ")
              .append(layer)
              .append(experts.size() == 1 ? " has" : " have")
              .append(" no live shard (")
              .append(labelAndWhy[1])
              .append(')');
          parts.add(b.toString());
        });
    return String.join("; ", parts)
        + "; requests that need them fail until a shard hosting them is back";
  }

  private static String groupLabel(int group) {
    return group == ExpertGroup.TEXT ? "" : DispatchPlan.groupName(group) + " ";
  }
}
