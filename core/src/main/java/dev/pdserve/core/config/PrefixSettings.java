package dev.pdserve.core.config;

/**
 * KV leases, prefix caching and conditional disaggregation.
 *
 * @param leaseSeconds a decode reservation (and the request decoding in it) is freed when its
 *     router has not renewed it for this long ({@code pdserve.kv.lease-seconds})
 * @param prefixCache whether prefill nodes keep prompts' full KV blocks for later prompts sharing a
 *     prefix ({@code pdserve.prefill.prefix-cache})
 * @param localPrefillThreshold prompts of at most this many tokens are prefilled by the decode node
 *     itself, with no KV transfer; 0 = never ({@code pdserve.router.local-prefill-threshold})
 * @param cachedTokenWeight α in the router's prefill score {@code queued tokens − α · cached
 *     tokens} ({@code pdserve.router.prefix-cache-weight})
 */
public record PrefixSettings(
    int leaseSeconds, boolean prefixCache, int localPrefillThreshold, double cachedTokenWeight) {
  public static final int DEFAULT_LEASE_SECONDS = 10;

  /** Measured on this project's CPU presets: see docs/PERFORMANCE.md, "Local prefill threshold". */
  public static final int DEFAULT_LOCAL_PREFILL_THRESHOLD = 64;

  public static final double DEFAULT_CACHED_TOKEN_WEIGHT = 1.0;

  public static final PrefixSettings DEFAULTS =
      new PrefixSettings(
          DEFAULT_LEASE_SECONDS,
          true,
          DEFAULT_LOCAL_PREFILL_THRESHOLD,
          DEFAULT_CACHED_TOKEN_WEIGHT);
}
