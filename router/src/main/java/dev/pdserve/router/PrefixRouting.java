package dev.pdserve.router;

import dev.pdserve.core.config.PrefixSettings;
import dev.pdserve.core.kv.PrefixHasher;

/**
 * How the router uses prompt prefixes.
 *
 * @param hasher block hashes of prompts, the same the prefill nodes' prefix caches compute; null
 *     turns prefix-aware routing off
 * @param cachedTokenWeight α in a prefill node's score {@code queued prompt tokens − α · cached
 *     prefix tokens} (lower wins)
 * @param trackedBlocksPerNode prefix blocks remembered per prefill node (the index is bounded)
 * @param localPrefillThreshold prompts of at most this many tokens are prefilled by the decode node
 *     itself, with no KV transfer ({@code pdserve.router.local-prefill-threshold}); 0 = never.
 *     Decode nodes keep no prefix cache, so the part they compute is the whole prompt.
 */
public record PrefixRouting(
    PrefixHasher hasher,
    double cachedTokenWeight,
    int trackedBlocksPerNode,
    int localPrefillThreshold) {
  /** α unless configured otherwise: a cached token is worth one queued token. */
  public static final double DEFAULT_CACHED_TOKEN_WEIGHT =
      PrefixSettings.DEFAULT_CACHED_TOKEN_WEIGHT;

  public static final int DEFAULT_TRACKED_BLOCKS_PER_NODE = 65_536;

  public PrefixRouting {
    if (cachedTokenWeight < 0 || Double.isNaN(cachedTokenWeight)) {
      throw new IllegalArgumentException(
          "cached token weight must be >= 0, got " + cachedTokenWeight);
    }
    if (trackedBlocksPerNode < 1 || localPrefillThreshold < 0) {
      throw new IllegalArgumentException(
          "tracked blocks per node must be >= 1 and local prefill threshold >= 0, got "
              + trackedBlocksPerNode
              + " and "
              + localPrefillThreshold);
    }
  }

  /** No prefix-aware routing, no local prefill: the router as it was. */
  public static PrefixRouting disabled() {
    return new PrefixRouting(null, DEFAULT_CACHED_TOKEN_WEIGHT, DEFAULT_TRACKED_BLOCKS_PER_NODE, 0);
  }

  /**
   * Prefix-aware routing with {@code hasher} and the default weight; local prefill up to {@code
   * threshold} tokens.
   */
  public static PrefixRouting of(PrefixHasher hasher, int localPrefillThreshold) {
    return new PrefixRouting(
        hasher,
        DEFAULT_CACHED_TOKEN_WEIGHT,
        DEFAULT_TRACKED_BLOCKS_PER_NODE,
        localPrefillThreshold);
  }
}
