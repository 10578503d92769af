package dev.pdserve.core.coordination;

import com.google.common.base.Ticker;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeRegistry;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.cluster.Transition;
import dev.pdserve.core.config.NodeRole;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The role-switch protocol, run on the worker that switches: ACTIVE → DRAINING → SWITCHING → ACTIVE
 * in the new role, each step an epoch-fenced compare-and-set on the node's registry entry (so a
 * stale actor — an old coordinator, a second operator — is refused, never applied).
 *
 * <p>Rules: a worker switches between prefill and decode only; one switch at a time per node; a
 * switch that would leave its old role without an ACTIVE node is refused (checked before and again
 * after the node is marked DRAINING, so two nodes of one role racing cannot both leave); draining
 * is bounded — if the engine still holds work when the bound passes, the node returns to ACTIVE in
 * its old role and the switch is reported as refused. The bound, and every duration reported, is
 * read from the {@link Ticker} given at construction: an engine whose drain returns early with work
 * left is asked again with what is left of the bound, until it reports drained or the ticker says
 * the bound has passed.
 *
 * <p>Every transition is logged with node, roles, epoch, duration and reason; completed switches
 * and migrations are counted ({@link #switches()}, {@link #migrations()}) and reported to the
 * listeners ({@link #addListener}) — the hook for metrics.
 */
public final class RoleSwitcher {
  private static final Logger LOG = LogManager.getLogger(RoleSwitcher.class);

  private final NodeRegistry registry;
  private final String nodeId;
  private final RoleEngines engines;
  private final Duration drainTimeout;
  private final Ticker ticker;
  private final List<Consumer<RoleSwitchResult>> listeners = new CopyOnWriteArrayList<>();
  private final AtomicLong switches = new AtomicLong();
  private final AtomicLong migrations = new AtomicLong();
  private final AtomicReference<RoleSwitchResult> last = new AtomicReference<>();
  private volatile String refusal; // set once the node shuts down: every switch is refused

  /**
   * @param drainTimeout how long the engine of the old role may take to drain
   * @param ticker the clock of the drain bound and of the reported durations ({@link
   *     Ticker#systemTicker()} in production)
   */
  public RoleSwitcher(
      NodeRegistry registry,
      String nodeId,
      RoleEngines engines,
      Duration drainTimeout,
      Ticker ticker) {
    this.registry = registry;
    this.nodeId = nodeId;
    this.engines = engines;
    this.drainTimeout = drainTimeout;
    this.ticker = ticker;
  }

  /**
   * Calls {@code listener} with the result of every switch attempt that reached DRAINING (accepted
   * or abandoned).
   */
  public void addListener(Consumer<RoleSwitchResult> listener) {
    listeners.add(listener);
  }

  /**
   * Refuses every switch from now on with {@code reason} (e.g. the node is shutting down); a switch
   * already under way runs to its end.
   */
  public void refuseFurtherSwitches(String reason) {
    this.refusal = reason;
  }

  /** Switches completed on this node. */
  public long switches() {
    return switches.get();
  }

  /** Sequences this node migrated to other decode nodes while draining. */
  public long migrations() {
    return migrations.get();
  }

  /** The last switch attempt that got past the checks, if any. */
  public Optional<RoleSwitchResult> last() {
    return Optional.ofNullable(last.get());
  }

  /**
   * Runs the switch; returns when the node is ACTIVE in the new role, or refused. One at a time.
   */
  public synchronized RoleSwitchResult switchRole(RoleSwitchRequest req) {
    long t0 = ticker.read();
    String refused = refusal;
    if (refused != null) {
      return RoleSwitchResult.refused(req, null, -1, 0, refused);
    }
    if (!req.nodeId().equals(nodeId)) {
      return RoleSwitchResult.refused(
          req, null, -1, 0, "this is node " + nodeId + ", not " + req.nodeId());
    }
    if (req.to() != NodeRole.PREFILL && req.to() != NodeRole.DECODE) {
      return RoleSwitchResult.refused(
          req,
          null,
          -1,
          0,
          "a worker switches between prefill and decode only, not to "
              + req.to().name().toLowerCase());
    }
    Optional<NodeInfo> entry = registry.get(nodeId);
    if (entry.isEmpty()) {
      return RoleSwitchResult.refused(
          req, null, -1, 0, "node " + nodeId + " is not in the registry");
    }
    NodeInfo n = entry.get();
    NodeRole from = n.role();
    if (from == req.to()) {
      return RoleSwitchResult.refused(
          req,
          from,
          n.epoch(),
          0,
          "node "
              + nodeId
              + " already serves the "
              + name(from)
              + " role (epoch "
              + n.epoch()
              + ")");
    }
    if (req.expectedEpoch() != 0 && req.expectedEpoch() != n.epoch()) {
      return RoleSwitchResult.refused(
          req,
          from,
          n.epoch(),
          0,
          "stale request: node "
              + nodeId
              + " is at epoch "
              + n.epoch()
              + ", the request expected "
              + req.expectedEpoch()
              + "; read the registry again");
    }
    if (n.state() != NodeState.ACTIVE) {
      return RoleSwitchResult.refused(
          req,
          from,
          n.epoch(),
          0,
          "node " + nodeId + " is " + n.state() + ", not ACTIVE; a switch starts from ACTIVE only");
    }
    if (othersActive(from) == 0) {
      return RoleSwitchResult.refused(
          req,
          from,
          n.epoch(),
          0,
          "node "
              + nodeId
              + " is the only ACTIVE "
              + name(from)
              + " node; switching it would leave the cluster without that role");
    }

    Transition draining =
        registry.compareAndSet(nodeId, n.epoch(), NodeState.ACTIVE, null, NodeState.DRAINING);
    if (!draining.applied()) {
      return RoleSwitchResult.refused(
          req,
          from,
          draining.epoch(),
          millis(t0),
          "node " + nodeId + " changed meanwhile: " + draining);
    }
    logTransition(
        from, from, NodeState.ACTIVE, NodeState.DRAINING, draining.epoch(), t0, req.reason());
    if (othersActive(from) == 0) {
      // Another node of the role started leaving at the same moment: stay.
      Transition back =
          registry.compareAndSet(
              nodeId, draining.epoch(), NodeState.DRAINING, null, NodeState.ACTIVE);
      logTransition(
          from,
          from,
          NodeState.DRAINING,
          NodeState.ACTIVE,
          back.epoch(),
          t0,
          "abandoned: no other ACTIVE " + name(from) + " node");
      return RoleSwitchResult.refused(
          req,
          from,
          back.epoch(),
          millis(t0),
          "no other ACTIVE "
              + name(from)
              + " node is left (another switch is under way); node "
              + nodeId
              + " stays "
              + name(from));
    }

    engines.setAccepting(from, false);
    DrainReport drain = drain(from, t0 + drainTimeout.toNanos());
    migrations.addAndGet(drain.migrated());
    if (!drain.drained()) {
      engines.setAccepting(from, true);
      Transition back =
          registry.compareAndSet(
              nodeId, draining.epoch(), NodeState.DRAINING, null, NodeState.ACTIVE);
      logTransition(
          from,
          from,
          NodeState.DRAINING,
          NodeState.ACTIVE,
          back.epoch(),
          t0,
          "abandoned: " + drain.detail());
      return finish(
          new RoleSwitchResult(
              false,
              "node "
                  + nodeId
                  + " did not drain within "
                  + drainTimeout.toSeconds()
                  + " s ("
                  + drain.detail()
                  + "); it stays "
                  + name(from),
              nodeId,
              from,
              req.to(),
              back.epoch(),
              millis(t0),
              drain.migrated(),
              drain.finishedLocally()));
    }

    Transition switching =
        registry.compareAndSet(
            nodeId, draining.epoch(), NodeState.DRAINING, null, NodeState.SWITCHING);
    if (!switching.applied()) {
      engines.setAccepting(from, true);
      return finish(
          new RoleSwitchResult(
              false,
              "node "
                  + nodeId
                  + "'s registry entry changed while draining: "
                  + switching
                  + "; it stays "
                  + name(from),
              nodeId,
              from,
              req.to(),
              switching.epoch(),
              millis(t0),
              drain.migrated(),
              drain.finishedLocally()));
    }
    logTransition(
        from, from, NodeState.DRAINING, NodeState.SWITCHING, switching.epoch(), t0, req.reason());
    engines.setAccepting(req.to(), true);
    Transition active =
        registry.compareAndSet(
            nodeId, switching.epoch(), NodeState.SWITCHING, req.to(), NodeState.ACTIVE);
    if (!active.applied()) {
      engines.setAccepting(req.to(), false);
      engines.setAccepting(from, true);
      return finish(
          new RoleSwitchResult(
              false,
              "node " + nodeId + "'s registry entry changed while switching: " + active,
              nodeId,
              from,
              req.to(),
              active.epoch(),
              millis(t0),
              drain.migrated(),
              drain.finishedLocally()));
    }
    logTransition(
        from, req.to(), NodeState.SWITCHING, NodeState.ACTIVE, active.epoch(), t0, req.reason());
    switches.incrementAndGet();
    return finish(
        new RoleSwitchResult(
            true,
            "node "
                + nodeId
                + " switched "
                + name(from)
                + " -> "
                + name(req.to())
                + " (epoch "
                + active.epoch()
                + ", "
                + drain.migrated()
                + " sequence(s) migrated, "
                + drain.finishedLocally()
                + " finished while draining)",
            nodeId,
            from,
            req.to(),
            active.epoch(),
            millis(t0),
            drain.migrated(),
            drain.finishedLocally()));
  }

  /**
   * Drains the engine of {@code role} until it holds no work or the ticker passes {@code
   * deadlineNanos}. An engine that returns with work left before the deadline (its own wait ended
   * early) is asked again with what is left; what it migrated and finished adds up over the calls.
   * A failed drain, or an interrupt, ends it at once.
   */
  private DrainReport drain(NodeRole role, long deadlineNanos) {
    int migrated = 0;
    int finished = 0;
    while (true) {
      DrainReport r;
      try {
        r = engines.drain(role, Duration.ofNanos(Math.max(0, deadlineNanos - ticker.read())));
      } catch (RuntimeException e) {
        return new DrainReport(false, migrated, finished, "drain failed: " + e);
      }
      migrated += r.migrated();
      finished += r.finishedLocally();
      if (r.drained()
          || deadlineNanos - ticker.read() <= 0
          || Thread.currentThread().isInterrupted()) {
        return new DrainReport(r.drained(), migrated, finished, r.detail());
      }
    }
  }

  private RoleSwitchResult finish(RoleSwitchResult r) {
    last.set(r);
    LOG.info(
        "role switch of {} {}->{} {}: {} ({} ms, {} migrated, {} finished locally)",
        nodeId,
        name(r.from()),
        name(r.to()),
        r.accepted() ? "done" : "abandoned",
        r.message(),
        r.durationMillis(),
        r.migrated(),
        r.finishedLocally());
    for (Consumer<RoleSwitchResult> l : listeners) {
      try {
        l.accept(r);
      } catch (RuntimeException e) {
        LOG.warn("role switch listener failed", e);
      }
    }
    return r;
  }

  private int othersActive(NodeRole role) {
    int n = 0;
    for (NodeInfo i : registry.activeNodes(role)) {
      if (!i.id().equals(nodeId)) {
        n++;
      }
    }
    return n;
  }

  private void logTransition(
      NodeRole fromRole,
      NodeRole toRole,
      NodeState fromState,
      NodeState toState,
      long epoch,
      long t0,
      String reason) {
    LOG.info(
        "node {} {}/{} -> {}/{} epoch {} after {} ms (reason: {})",
        nodeId,
        name(fromRole),
        fromState,
        name(toRole),
        toState,
        epoch,
        millis(t0),
        reason);
  }

  private static String name(NodeRole r) {
    return r == null ? "?" : r.name().toLowerCase();
  }

  private long millis(long t0) {
    return (ticker.read() - t0) / 1_000_000;
  }
}
