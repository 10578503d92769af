package dev.pdserve.core.cluster;

import dev.pdserve.core.config.ExpertRange;
import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.ModelConfig;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Which expert shards host each routed expert: (layer, group, expert) → shard node ids, under a
 * version number. A new placement is published with the next version ({@link
 * ExpertPlacementStore#publish}); callers switch between steps. An expert listed on several shards
 * is replicated (hot experts).
 *
 * @param version placement version, {@code >= 1} once published
 * @param shards hosting shards per expert, in preference order; unmodifiable
 */
public record ExpertPlacement(long version, Map<ExpertKey, List<String>> shards) {

  /**
   * One routed expert of one MoE layer; {@code group} is {@link ExpertGroup#TEXT} or {@link
   * ExpertGroup#VISION}.
   */
  public record ExpertKey(int layer, int group, int expert) implements Comparable<ExpertKey> {
    private static final Comparator<ExpertKey> ORDER =
        Comparator.comparingInt(ExpertKey::layer)
            .thenComparingInt(ExpertKey::group)
            .thenComparingInt(ExpertKey::expert);

    public ExpertKey {
      if (layer < 0 || group < 0 || expert < 0) {
        throw new IllegalArgumentException(
            "layer, group and expert must be >= 0, got " + layer + "/" + group + "/" + expert);
      }
    }

    @Override
    public int compareTo(ExpertKey o) {
      return ORDER.compare(this, o);
    }

    @Override
    public String toString() {
      return "L" + layer + "/g" + group + "/e" + expert;
    }
  }

  public ExpertPlacement {
    if (version < 0) {
      throw new IllegalArgumentException("version must be >= 0, got " + version);
    }
    TreeMap<ExpertKey, List<String>> copy = new TreeMap<>();
    for (Map.Entry<ExpertKey, List<String>> e : shards.entrySet()) {
      if (e.getValue().isEmpty()) {
        throw new IllegalArgumentException("expert " + e.getKey() + " has no shard");
      }
      copy.put(e.getKey(), List.copyOf(e.getValue()));
    }
    shards = Collections.unmodifiableMap(copy);
  }

  /** The shards hosting an expert, in preference order; empty if it is not placed. */
  public List<String> shardsFor(int layer, int group, int expert) {
    return shards.getOrDefault(new ExpertKey(layer, group, expert), List.of());
  }

  /** Every shard that hosts at least one expert, sorted. */
  public Set<String> shardIds() {
    TreeSet<String> ids = new TreeSet<>();
    shards.values().forEach(ids::addAll);
    return Collections.unmodifiableSet(ids);
  }

  /** The experts a shard hosts, in (layer, group, expert) order. */
  public List<ExpertKey> expertsOn(String shardId) {
    List<ExpertKey> out = new ArrayList<>();
    shards.forEach(
        (k, v) -> {
          if (v.contains(shardId)) {
            out.add(k);
          }
        });
    return out;
  }

  /** The same assignment under another version. */
  public ExpertPlacement withVersion(long newVersion) {
    return new ExpertPlacement(newVersion, shards);
  }

  /**
   * Builds a placement (version 0, not yet published) where each shard hosts the experts of its
   * range in every MoE layer and every expert group of {@code model}. Overlapping ranges replicate
   * experts. A range is clipped to each group's size.
   *
   * @throws IllegalArgumentException if some expert of some group is hosted by no shard, or a range
   *     lies wholly outside every group
   */
  /**
   * This placement with {@code shardId} added as a host of experts {@code range} of every MoE layer
   * and every group (version unchanged: publishing assigns the next one).
   */
  public ExpertPlacement withShard(ModelConfig model, String shardId, ExpertRange range) {
    Map<ExpertKey, List<String>> next = new TreeMap<>();
    shards.forEach((k, v) -> next.put(k, new ArrayList<>(v)));
    for (int l = 0; l < model.numLayers(); l++) {
      for (int g : model.groupsInLayer(l)) {
        int experts = model.expertGroups().get(g).numExperts();
        for (int e = range.first(); e <= Math.min(range.last(), experts - 1); e++) {
          List<String> hosts = next.computeIfAbsent(new ExpertKey(l, g, e), x -> new ArrayList<>());
          if (!hosts.contains(shardId)) {
            hosts.add(shardId);
          }
        }
      }
    }
    return new ExpertPlacement(version, next);
  }

  /** This placement without {@code shardId} (experts only it hosted have no host any more). */
  public ExpertPlacement withoutShard(String shardId) {
    Map<ExpertKey, List<String>> next = new TreeMap<>();
    shards.forEach(
        (k, v) -> {
          List<String> hosts = new ArrayList<>(v);
          hosts.remove(shardId);
          if (!hosts.isEmpty()) {
            next.put(k, hosts);
          }
        });
    return new ExpertPlacement(version, next);
  }

  /** Whether every expert of every MoE layer of {@code model} has at least one host. */
  public boolean covers(ModelConfig model) {
    for (int l = 0; l < model.numLayers(); l++) {
      for (int g : model.groupsInLayer(l)) {
        for (int e = 0; e < model.expertGroups().get(g).numExperts(); e++) {
          if (shardsFor(l, g, e).isEmpty()) {
            return false;
          }
        }
      }
    }
    return true;
  }

  public static ExpertPlacement fromShardRanges(
      ModelConfig model, Map<String, ExpertRange> rangesByShard) {
    Map<String, ExpertRange> ranges = new TreeMap<>(rangesByShard);
    if (ranges.isEmpty()) {
      throw new IllegalArgumentException("no expert shards given");
    }
    int maxExperts =
        model.expertGroups().stream().mapToInt(ExpertGroup::numExperts).max().orElse(0);
    ranges.forEach(
        (shard, r) -> {
          if (r.first() >= maxExperts) {
            throw new IllegalArgumentException(
                "shard "
                    + shard
                    + ": expert range "
                    + r
                    + " is outside every group (largest has "
                    + maxExperts
                    + " experts)");
          }
        });
    Map<ExpertKey, List<String>> out = new LinkedHashMap<>();
    List<String> uncovered = new ArrayList<>();
    for (int layer = 0; layer < model.numLayers(); layer++) {
      for (int g : model.groupsInLayer(layer)) {
        ExpertGroup group = model.expertGroups().get(g);
        for (int e = 0; e < group.numExperts(); e++) {
          List<String> hosts = new ArrayList<>();
          for (Map.Entry<String, ExpertRange> r : ranges.entrySet()) {
            if (r.getValue().contains(e)) {
              hosts.add(r.getKey());
            }
          }
          if (hosts.isEmpty()) {
            uncovered.add(group.name() + " expert " + e);
          } else {
            out.put(new ExpertKey(layer, g, e), hosts);
          }
        }
      }
    }
    if (!uncovered.isEmpty()) {
      List<String> distinct = new ArrayList<>(new LinkedHashSet<>(uncovered));
      throw new IllegalArgumentException(
          "no shard hosts "
              + distinct.size()
              + " expert(s), e.g. "
              + String.join(", ", distinct.subList(0, Math.min(5, distinct.size())))
              + "; shard ranges: "
              + ranges);
    }
    return new ExpertPlacement(0, out);
  }
}
