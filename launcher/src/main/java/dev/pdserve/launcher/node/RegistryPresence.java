package dev.pdserve.launcher.node;

import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Keeps a node's registry entry present and its load current: registers it ACTIVE, then every
 * period updates its load figures — and registers it again if the cluster lost the entry (a member
 * wrongly suspected dead under load has its entries removed by the others; once it is back, it must
 * reappear without a restart).
 */
final class RegistryPresence implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(RegistryPresence.class);

  private final NodeRegistry registry;
  private final String id;
  private final Supplier<NodeRole> role;
  private final String grpcAddress;
  private final String flightAddress;
  private final String metricsUrl;
  private final Supplier<Load> load;
  private final ScheduledExecutorService timer;
  private volatile NodeInfo current;

  /** Set by {@link #leave()}: the entry goes DRAINING and is never registered ACTIVE again. */
  private volatile boolean leaving;

  RegistryPresence(
      NodeRegistry registry,
      String id,
      NodeRole role,
      String grpcAddress,
      String flightAddress,
      Supplier<Load> load,
      long periodMillis) {
    this(registry, id, () -> role, grpcAddress, flightAddress, "", load, periodMillis);
  }

  /** As above, publishing the node's {@code /metrics} URL in its entry. */
  RegistryPresence(
      NodeRegistry registry,
      String id,
      NodeRole role,
      String grpcAddress,
      String flightAddress,
      String metricsUrl,
      Supplier<Load> load,
      long periodMillis) {
    this(registry, id, () -> role, grpcAddress, flightAddress, metricsUrl, load, periodMillis);
  }

  /**
   * {@code role}: the role to register under (again) — a worker's changes with role switches;
   * {@code metricsUrl}: the node's {@code /metrics} URL, published in its entry.
   */
  RegistryPresence(
      NodeRegistry registry,
      String id,
      Supplier<NodeRole> role,
      String grpcAddress,
      String flightAddress,
      String metricsUrl,
      Supplier<Load> load,
      long periodMillis) {
    this.metricsUrl = metricsUrl;
    this.registry = registry;
    this.id = id;
    this.role = role;
    this.grpcAddress = grpcAddress;
    this.flightAddress = flightAddress;
    this.load = load;
    this.current = registerActive();
    this.timer =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "registry-presence");
              t.setDaemon(true);
              return t;
            });
    timer.scheduleWithFixedDelay(this::tick, periodMillis, periodMillis, TimeUnit.MILLISECONDS);
  }

  private NodeInfo registerActive() {
    NodeInfo info =
        registry.register(
            NodeInfo.starting(id, role.get(), grpcAddress, flightAddress, metricsUrl));
    var t = registry.compareAndSet(id, info.epoch(), NodeState.STARTING, null, NodeState.ACTIVE);
    if (!t.applied()) {
      throw new IllegalStateException("could not mark " + id + " ACTIVE: " + t.outcome());
    }
    return t.node();
  }

  private void tick() {
    try {
      Load l = load.get();
      if (registry.updateLoad(id, l)) {
        registry.get(id).ifPresent(n -> current = n);
        if (leaving) {
          markDraining();
        }
        return;
      }
      if (leaving) {
        return; // gone from the registry while leaving: stay gone
      }
      LOG.warn(
          "registry entry of {} was lost (the cluster took this member for dead); registering again",
          id);
      current = registerActive();
      registry.updateLoad(id, l);
    } catch (RuntimeException e) {
      LOG.debug("registry update of {} failed: {}", id, e.toString());
    }
  }

  NodeInfo current() {
    return current;
  }

  /**
   * Starts leaving the cluster: the entry moves ACTIVE → DRAINING (an epoch-fenced compare-and-set,
   * as a role switch does), so routers and the coordinator stop choosing this node. If the entry is
   * not ACTIVE now (a role switch is under way), the periodic update retries until it is, or until
   * {@link #close()} removes it. Never registers the node again.
   *
   * @return whether the entry is DRAINING now
   */
  boolean leave() {
    leaving = true;
    try {
      return markDraining();
    } catch (RuntimeException e) {
      LOG.warn("could not mark {} DRAINING: {}", id, e.toString());
      return false;
    }
  }

  private boolean markDraining() {
    for (int attempt = 0; attempt < 5; attempt++) {
      NodeInfo n = registry.get(id).orElse(null);
      if (n == null) {
        return false;
      }
      if (n.state() == NodeState.DRAINING && n.epoch() > 0 && drainedAtEpoch == n.epoch()) {
        return true;
      }
      if (n.state() != NodeState.ACTIVE) {
        return false; // a role switch holds the entry; try again on the next update
      }
      var t = registry.compareAndSet(id, n.epoch(), NodeState.ACTIVE, null, NodeState.DRAINING);
      if (t.applied()) {
        drainedAtEpoch = t.epoch();
        current = t.node();
        LOG.info("node {} is leaving: registry entry DRAINING at epoch {}", id, t.epoch());
        return true;
      }
    }
    return false;
  }

  private volatile long drainedAtEpoch = -1;

  @Override
  public void close() {
    timer.shutdownNow();
    try {
      registry.remove(id);
    } catch (RuntimeException e) {
      LOG.debug("could not deregister {}: {}", id, e.toString());
    }
  }
}
