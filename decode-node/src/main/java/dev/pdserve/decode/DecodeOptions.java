package dev.pdserve.decode;

import java.time.Duration;

/**
 * Decode node settings.
 *
 * @param maxBatch sequences decoded in one step at most (more running sequences take turns)
 * @param transferTimeout how long a joined request waits for its KV to arrive
 * @param reservationTtl how long a reservation that no request joined lives before it is freed
 */
public record DecodeOptions(int maxBatch, Duration transferTimeout, Duration reservationTtl) {
  public DecodeOptions {
    if (maxBatch < 1) {
      throw new IllegalArgumentException("decode max batch must be >= 1, got " + maxBatch);
    }
  }

  public static DecodeOptions defaults() {
    return new DecodeOptions(64, Duration.ofSeconds(60), Duration.ofSeconds(120));
  }
}
