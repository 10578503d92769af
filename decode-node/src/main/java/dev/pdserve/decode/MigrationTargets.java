package dev.pdserve.decode;

import java.util.Optional;

/**
 * Where a draining decode node can move its sequences: reservations on other ACTIVE decode nodes.
 */
public interface MigrationTargets {
  /**
   * Reserves room for a sequence holding {@code kvTokens} positions that may generate {@code
   * maxNewTokens} more, on some other ACTIVE decode node; empty when none can take it.
   */
  Optional<MigrationTarget> reserve(String requestId, int kvTokens, int maxNewTokens);

  /** Gives a reservation back (the push failed). */
  void release(MigrationTarget target);
}
