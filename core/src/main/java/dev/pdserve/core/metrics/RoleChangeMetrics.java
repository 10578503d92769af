package dev.pdserve.core.metrics;

import io.prometheus.metrics.core.metrics.Counter;

/**
 * Role switches and sequence migrations of a worker ({@value MetricNames#ROLE_SWITCHES}, {@value
 * MetricNames#MIGRATIONS}): the role-switch protocol calls {@link #roleSwitched()} when the worker
 * enters its new role and {@link #migrated(int)} for the running sequences it hands to other
 * decode nodes. Both stay 0 while nothing calls them.
 */
public final class RoleChangeMetrics {
  private final Counter switches;
  private final Counter migrations;

  public RoleChangeMetrics(NodeMetrics metrics) {
    this.switches = metrics.counter(MetricNames.ROLE_SWITCHES, "Times this worker switched role (prefill <-> decode).");
    this.migrations = metrics.counter(MetricNames.MIGRATIONS, "Running sequences migrated from this worker to another decode node.");
  }

  /** The worker now serves its new role. */
  public void roleSwitched() {
    switches.inc();
  }

  /** {@code sequences} running sequences moved to other decode nodes. */
  public void migrated(int sequences) {
    if (sequences < 0) {
      throw new IllegalArgumentException("migrated sequences must be >= 0, got " + sequences);
    }
    migrations.inc(sequences);
  }
}
