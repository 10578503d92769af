package dev.pdserve.launcher.node;

import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.coordination.DrainReport;
import dev.pdserve.core.coordination.RoleEngines;
import dev.pdserve.core.coordination.RoleSwitchResult;
import dev.pdserve.core.coordination.RoleSwitcher;
import dev.pdserve.core.grpc.GrpcServer;
import dev.pdserve.core.metrics.RoleChangeMetrics;
import java.time.Duration;
import java.util.Locale;

/**
 * The role a worker serves, how it changes, and what its health names say about it. The role is its
 * registry role once a switch completes ({@link RoleSwitcher} drives the engines through the switch
 * protocol); {@code pdserve_worker_role} and the switch metrics follow it. Health: {@code
 * pdserve.worker} SERVING from registration until the shutdown drain begins, whatever the role;
 * {@code pdserve.prefill} / {@code pdserve.decode} SERVING only for the role served now. The
 * overall service {@code ""} is the server's own (SERVING until the server stops).
 */
final class WorkerRoles {
  private final WorkerEngines engines;
  private final RoleChangeMetrics metrics;
  private final RoleSwitcher switcher;
  private final Object healthLock = new Object();

  /** The role this worker serves now. */
  private volatile NodeRole role;

  /** Set when the shutdown drain begins: health NOT_SERVING, nothing accepted any more. */
  private volatile boolean shuttingDown;

  private GrpcServer server; // guarded by healthLock; set once the node is registered ACTIVE

  /** Starts serving the node's configured role: its engine accepts work, the other does not. */
  WorkerRoles(NodeRuntime node, WorkerEngines engines) {
    this.engines = engines;
    this.metrics = new RoleChangeMetrics(node.metrics());
    this.role = node.config().role();
    metrics.serving(name(role));
    engines.setAccepting(NodeRole.PREFILL, role == NodeRole.PREFILL);
    engines.setAccepting(NodeRole.DECODE, role == NodeRole.DECODE);
    this.switcher =
        new RoleSwitcher(
            node.registry(),
            node.id(),
            new SwitchedEngines(),
            node.config().coordinator().drainTimeout(),
            node.ticker());
    switcher.addListener(this::switched);
  }

  NodeRole role() {
    return role;
  }

  RoleSwitcher switcher() {
    return switcher;
  }

  RoleChangeMetrics metrics() {
    return metrics;
  }

  /** The node is registered ACTIVE: from now on {@code server}'s health names follow the role. */
  void registered(GrpcServer server) {
    synchronized (healthLock) {
      this.server = server;
    }
    updateHealth();
  }

  /**
   * The shutdown drain begins: every readiness name NOT_SERVING from now on, further switches
   * refused with {@code reason}, and an engine that a switch under way would turn on stays off.
   */
  void shutDown(String reason) {
    shuttingDown = true;
    updateHealth();
    switcher.refuseFurtherSwitches(reason);
  }

  private void switched(RoleSwitchResult r) {
    if (!r.accepted()) {
      metrics.switchRefused();
      return;
    }
    role = r.to();
    metrics.serving(name(r.to()));
    updateHealth();
    metrics.roleSwitched(name(r.from()), name(r.to()), r.durationMillis());
    metrics.migrated(r.migrated());
  }

  private void updateHealth() {
    synchronized (healthLock) {
      if (server == null) {
        return; // not registered yet: every name NOT_SERVING, as the server started them
      }
      boolean up = !shuttingDown;
      NodeRole r = role;
      server.setServing(NodeRole.WORKER_HEALTH_SERVICE, up);
      server.setServing(NodeRole.PREFILL.healthServiceName(), up && r == NodeRole.PREFILL);
      server.setServing(NodeRole.DECODE.healthServiceName(), up && r == NodeRole.DECODE);
    }
  }

  static String name(NodeRole role) {
    return role.name().toLowerCase(Locale.ROOT);
  }

  /** The worker's engines as the switch protocol drives them. */
  private final class SwitchedEngines implements RoleEngines {
    @Override
    public void setAccepting(NodeRole r, boolean accepting) {
      if (accepting && shuttingDown) {
        return; // a switch that was under way when the drain began: take nothing new
      }
      engines.setAccepting(r, accepting);
    }

    @Override
    public DrainReport drain(NodeRole r, Duration timeout) {
      return engines.drain(r, timeout);
    }
  }
}
