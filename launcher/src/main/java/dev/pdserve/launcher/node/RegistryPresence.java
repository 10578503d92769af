package dev.pdserve.launcher.node;

import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import java.time.Duration;
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
 * reappear without a restart). Its one thread ({@code registry-presence-0}) stops in {@link
 * #close()}, which also removes the entry.
 */
final class RegistryPresence implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(RegistryPresence.class);
  private static final Duration STOP_WAIT = Duration.ofSeconds(2);

  /**
   * What the entry says about the node.
   *
   * @param role the role to register under (again): a worker's changes with role switches
   * @param flightAddress the KV Flight endpoint, or ""
   * @param metricsUrl the node's {@code /metrics} URL
   */
  record Entry(
      String id,
      Supplier<NodeRole> role,
      String grpcAddress,
      String flightAddress,
      String metricsUrl) {}

  private final NodeRegistry registry;
  private final Entry entry;
  private final String id;
  private final Supplier<Load> load;
  private final ScheduledExecutorService timer;
  private volatile NodeInfo current;
  private volatile long drainedAtEpoch = -1;

  /** Set by {@link #leave()}: the entry goes DRAINING and is never registered ACTIVE again. */
  private volatile boolean leaving;

  /** Registers {@code entry} ACTIVE now and updates its {@code load} every {@code period}. */
  RegistryPresence(NodeRegistry registry, Entry entry, Supplier<Load> load, Duration period) {
    this.registry = registry;
    this.entry = entry;
    this.id = entry.id();
    this.load = load;
    this.current = registerActive();
    this.timer =
        Executors.newSingleThreadScheduledExecutor(
            new NamedThreadFactory("registry-presence", true, id));
    timer.scheduleWithFixedDelay(
        this::tick, period.toMillis(), period.toMillis(), TimeUnit.MILLISECONDS);
  }

  private NodeInfo registerActive() {
    NodeInfo info =
        registry.register(
            NodeInfo.starting(
                id,
                entry.role().get(),
                entry.grpcAddress(),
                entry.flightAddress(),
                entry.metricsUrl()));
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

  /**
   * Stops the updates, waiting (up to {@link #STOP_WAIT}) for one under way — which could otherwise
   * register the node again just after — then removes the entry.
   */
  @Override
  public void close() {
    timer.shutdownNow();
    try {
      timer.awaitTermination(STOP_WAIT.toMillis(), TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    try {
      registry.remove(id);
    } catch (RuntimeException e) {
      LOG.debug("could not deregister {}: {}", id, e.toString());
    }
  }
}
