package dev.pdserve.router;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The router's approximate view of which prompt prefixes each prefill node holds in its prefix
 * cache: the block hashes of prompts it recently sent there, least recently used dropped first
 * (bounded per node). It holds what nodes report: a prefill response says how many of the prompt's
 * leading blocks the node's cache holds now, and only those are recorded; a reused prefix shorter
 * than predicted means the node evicted blocks, and the missing ones are forgotten.
 */
public final class PrefixIndex {
  private final int blockSize;
  private final int maxBlocksPerNode;
  private final Map<String, LinkedHashMap<Long, Boolean>> nodes = new ConcurrentHashMap<>();

  public PrefixIndex(int blockSize, int maxBlocksPerNode) {
    if (blockSize < 1 || maxBlocksPerNode < 1) {
      throw new IllegalArgumentException(
          "block size and blocks per node must be >= 1, got "
              + blockSize
              + " and "
              + maxBlocksPerNode);
    }
    this.blockSize = blockSize;
    this.maxBlocksPerNode = maxBlocksPerNode;
  }

  /**
   * Prompt tokens of {@code hashes} (a prompt's full blocks, at most {@code maxBlocks}) that {@code
   * node} likely holds.
   */
  public int cachedTokens(String node, long[] hashes, int maxBlocks) {
    LinkedHashMap<Long, Boolean> m = nodes.get(node);
    if (m == null) {
      return 0;
    }
    int n = Math.min(hashes.length, maxBlocks);
    int i = 0;
    synchronized (m) {
      while (i < n && m.containsKey(hashes[i])) {
        i++;
      }
    }
    return i * blockSize;
  }

  /**
   * Records what {@code node} reported after serving a prompt with these full-block hashes: it
   * reused {@code reportedCachedTokens} (this index predicted {@code predictedTokens}; blocks
   * predicted but missing are forgotten) and now holds the first {@code heldBlocks}.
   */
  public void served(
      String node, long[] hashes, int predictedTokens, int reportedCachedTokens, int heldBlocks) {
    LinkedHashMap<Long, Boolean> m = nodes.computeIfAbsent(node, k -> lru());
    synchronized (m) {
      for (int i = reportedCachedTokens / blockSize;
          i < predictedTokens / blockSize && i < hashes.length;
          i++) {
        m.remove(hashes[i]);
      }
      for (int i = Math.min(heldBlocks, hashes.length) - 1;
          i >= 0;
          i--) { // tail first: the head ends most recent, as on the node
        m.remove(hashes[i]);
        m.put(hashes[i], Boolean.TRUE);
      }
    }
  }

  /** Forgets a node (it left, or restarted with an empty cache). */
  public void forget(String node) {
    nodes.remove(node);
  }

  /** Blocks remembered for {@code node}. */
  public int size(String node) {
    LinkedHashMap<Long, Boolean> m = nodes.get(node);
    if (m == null) {
      return 0;
    }
    synchronized (m) {
      return m.size();
    }
  }

  private LinkedHashMap<Long, Boolean> lru() {
    return new LinkedHashMap<>(64, 0.75f, true) {
      private static final long serialVersionUID = 1L;

      @Override
      protected boolean removeEldestEntry(Map.Entry<Long, Boolean> eldest) {
        return size() > maxBlocksPerNode;
      }
    };
  }
}
