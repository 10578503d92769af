package dev.pdserve.decode;

import java.time.Duration;

/**
 * Decode node settings.
 *
 * @param maxBatch sequences decoded in one step at most (more running sequences take turns)
 * @param transferTimeout how long a joined request waits for its KV to arrive
 * @param reservationTtl how long a reservation that no request joined lives before it is freed
 * @param lease how long a reservation (and the request decoding in it) lives without a renewal from
 *     its router: a router or prefill node that vanished frees its KV after this
 */
public record DecodeOptions(
    int maxBatch, Duration transferTimeout, Duration reservationTtl, Duration lease) {
  /** Lease of a reservation unless configured otherwise ({@code pdserve.kv.lease-seconds}). */
  public static final Duration DEFAULT_LEASE = Duration.ofSeconds(10);

  public DecodeOptions {
    if (maxBatch < 1) {
      throw new IllegalArgumentException("decode max batch must be >= 1, got " + maxBatch);
    }
    if (lease == null || lease.toMillis() < 100) {
      throw new IllegalArgumentException("KV lease must be >= 100 ms, got " + lease);
    }
  }

  public static DecodeOptions defaults() {
    return new DecodeOptions(64, Duration.ofSeconds(60), Duration.ofSeconds(120), DEFAULT_LEASE);
  }
}
