package dev.pdserve.core.config;

import java.time.Duration;

/**
 * Role switching: the coordinator runtime and the switch protocol's bounds.
 *
 * @param enabled whether this node may act as the cluster's coordinator (workers only; the oldest
 *     enabled worker of the cluster is the one that does)
 * @param period how often the coordinator reads the registry and asks its policy
 * @param drainTimeout how long a switching node may drain (finish or migrate its work) before the
 *     switch is abandoned and the node returns to ACTIVE in its old role
 * @param ttftTargetMillis time-to-first-token target handed to the switch policy
 * @param tpotTargetMillis time-per-output-token target handed to the switch policy
 */
public record CoordinatorConfig(
    boolean enabled,
    Duration period,
    Duration drainTimeout,
    long ttftTargetMillis,
    long tpotTargetMillis) {
  public static final CoordinatorConfig DEFAULTS =
      new CoordinatorConfig(true, Duration.ofSeconds(1), Duration.ofSeconds(30), 2000, 100);

  public CoordinatorConfig {
    if (period == null || period.isNegative() || period.isZero()) {
      throw new IllegalArgumentException("coordinator period must be > 0, got " + period);
    }
    if (drainTimeout == null || drainTimeout.isNegative() || drainTimeout.isZero()) {
      throw new IllegalArgumentException("drain timeout must be > 0, got " + drainTimeout);
    }
    if (ttftTargetMillis < 1 || tpotTargetMillis < 1) {
      throw new IllegalArgumentException(
          "TTFT and TPOT targets must be >= 1 ms, got "
              + ttftTargetMillis
              + " and "
              + tpotTargetMillis);
    }
  }
}
