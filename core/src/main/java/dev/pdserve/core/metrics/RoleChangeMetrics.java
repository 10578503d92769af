package dev.pdserve.core.metrics;

import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.Gauge;
import io.prometheus.metrics.core.metrics.Histogram;
import java.util.List;

/**
 * Role switches and sequence migrations of a worker ({@value MetricNames#ROLE_SWITCHES}, {@value
 * MetricNames#MIGRATIONS}): the role-switch protocol calls {@link #roleSwitched()} when the worker
 * enters its new role and {@link #migrated(int)} for the running sequences it hands to other decode
 * nodes. Both stay 0 while nothing calls them.
 */
public final class RoleChangeMetrics {
  private final Counter switches;
  private final Counter migrations;
  private final Histogram switchSeconds;
  private final Counter refusals;
  private final Gauge role;

  public RoleChangeMetrics(NodeMetrics metrics) {
    this.switches =
        metrics.counter(
            MetricNames.ROLE_SWITCHES, "Times this worker switched role (prefill <-> decode).");
    this.migrations =
        metrics.counter(
            MetricNames.MIGRATIONS,
            "Running sequences migrated from this worker to another decode node.");
    this.switchSeconds =
        metrics.histogram(
            MetricNames.ROLE_SWITCH_TIME,
            "Duration of this worker's completed role switches (drain included), by direction.",
            new double[] {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
            "from",
            "to");
    this.refusals =
        metrics.counter(
            MetricNames.ROLE_SWITCH_REFUSALS,
            "Role switches this worker refused or backed out of (stale epoch, last node of a role, drain timeout).");
    this.role =
        metrics.gauge(
            MetricNames.WORKER_ROLE,
            "1 for the role this worker serves now, 0 for the other: its live role (a Kubernetes"
                + " pod's labels name only its starting role).",
            MetricNames.ROLE);
  }

  /** The worker serves {@code current} ({@code prefill} or {@code decode}) from now on. */
  public void serving(String current) {
    for (String r : List.of("prefill", "decode")) {
      role.labelValues(r).set(r.equals(current) ? 1 : 0);
    }
  }

  /** The worker switched {@code from} → {@code to} in {@code durationMillis} (drain included). */
  public void roleSwitched(String from, String to, long durationMillis) {
    switches.inc();
    switchSeconds.labelValues(from, to).observe(durationMillis / 1000.0);
  }

  /** A switch was refused or backed out of. */
  public void switchRefused() {
    refusals.inc();
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
