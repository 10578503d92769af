package dev.pdserve.core.config;

import java.util.OptionalInt;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * An expert shard's range derived from its place in a set of {@code shardCount} shards — how the
 * pods of one Kubernetes StatefulSet, which share their arguments, each find the experts they host.
 * The index is {@code pdserve.expert.shard-index} when set, else the trailing {@code -<ordinal>} of
 * the node id (StatefulSet pod names end in it) modulo the count, so {@code N × R} replicas host
 * every range {@code R} times.
 *
 * @param shardCount {@code pdserve.expert.shard-count}, empty when unset (the range is then {@code
 *     pdserve.expert.range}, or every expert)
 * @param shardIndex {@code pdserve.expert.shard-index}, 0..count-1, empty to use the node id's
 *     ordinal
 */
public record ExpertSharding(OptionalInt shardCount, OptionalInt shardIndex) {
  public static final ExpertSharding NONE =
      new ExpertSharding(OptionalInt.empty(), OptionalInt.empty());

  private static final Pattern ORDINAL = Pattern.compile("-(\\d{1,9})$");

  public ExpertSharding {
    if (shardCount.isPresent() && shardCount.getAsInt() < 1) {
      throw new IllegalArgumentException("shard count must be >= 1, got " + shardCount.getAsInt());
    }
    if (shardIndex.isPresent()) {
      if (shardCount.isEmpty()) {
        throw new IllegalArgumentException("a shard index needs a shard count");
      }
      if (shardIndex.getAsInt() < 0 || shardIndex.getAsInt() >= shardCount.getAsInt()) {
        throw new IllegalArgumentException(
            "shard index must be 0.."
                + (shardCount.getAsInt() - 1)
                + ", got "
                + shardIndex.getAsInt());
      }
    }
  }

  /** Whether the range comes from a shard count. */
  public boolean enabled() {
    return shardCount.isPresent();
  }

  /** The trailing {@code -<digits>} of a node id ({@code pdserve-experts-3} → 3), if any. */
  public static OptionalInt ordinalOf(String nodeId) {
    Matcher m = ORDINAL.matcher(nodeId);
    return m.find() ? OptionalInt.of(Integer.parseInt(m.group(1))) : OptionalInt.empty();
  }

  /**
   * This node's shard index: the configured one, else its node id's ordinal modulo the count.
   *
   * @throws IllegalArgumentException if neither is there
   */
  public int index(String nodeId) {
    if (shardIndex.isPresent()) {
      return shardIndex.getAsInt();
    }
    OptionalInt ordinal = ordinalOf(nodeId);
    if (ordinal.isEmpty()) {
      throw new IllegalArgumentException(noOrdinal(nodeId));
    }
    return ordinal.getAsInt() % shardCount.orElseThrow();
  }

  static String noOrdinal(String nodeId) {
    return "needs "
        + ConfigKeys.EXPERT_SHARD_INDEX
        + ", or a node id ending in -<ordinal> (a StatefulSet pod name such as pdserve-experts-0);"
        + " node id '"
        + nodeId
        + "' has none";
  }

  /**
   * The range node {@code nodeId} hosts of a model whose expert groups have {@code experts} routed
   * experts (the largest group's count when they differ).
   *
   * @throws IllegalArgumentException if the count exceeds {@code experts} or there is no index
   */
  public ExpertRange rangeFor(String nodeId, int experts) {
    return split(experts, shardCount.orElseThrow(), index(nodeId));
  }

  /**
   * Part {@code index} of {@code experts} expert indices split into {@code parts} contiguous ranges
   * whose sizes differ by at most one (64 into 2: {@code 0-31}, {@code 32-63}; 64 into 3: {@code
   * 0-20}, {@code 21-41}, {@code 42-63}).
   */
  public static ExpertRange split(int experts, int parts, int index) {
    if (parts < 1) {
      throw new IllegalArgumentException("shard count must be >= 1, got " + parts);
    }
    if (parts > experts) {
      throw new IllegalArgumentException(
          ConfigKeys.EXPERT_SHARD_COUNT
              + " is "
              + parts
              + " but the model has only "
              + experts
              + " routed experts per group; every shard must host at least one (use at most "
              + experts
              + ")");
    }
    if (index < 0 || index >= parts) {
      throw new IllegalArgumentException(
          "shard index must be 0.." + (parts - 1) + ", got " + index);
    }
    int first = (int) ((long) index * experts / parts);
    int last = (int) ((long) (index + 1) * experts / parts) - 1;
    return new ExpertRange(first, last);
  }
}
