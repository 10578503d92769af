package dev.pdserve.core.metrics;

import io.prometheus.metrics.core.metrics.Counter;

/**
 * Role switches and sequence migrations of a worker. Registered now so dashboards and the load
 * tester can rely on the names; they stay 0 until dynamic role switching exists.
 */
public final class RoleChangeMetrics {
  private final Counter switches;
  private final Counter migrations;

  public RoleChangeMetrics(NodeMetrics metrics) {
    this.switches =
        metrics.counter(MetricNames.ROLE_SWITCHES, "Times this worker switched role (prefill <-> decode). Always 0 until role switching exists.");
    this.migrations =
        metrics.counter(
            MetricNames.MIGRATIONS, "Running sequences migrated from this worker to another decode node. Always 0 until migration exists.");
  }

  public void roleSwitched() {
    switches.inc();
  }

  public void migrated(int sequences) {
    migrations.inc(sequences);
  }
}
