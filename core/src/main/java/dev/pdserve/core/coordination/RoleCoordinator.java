package dev.pdserve.core.coordination;

import com.google.common.annotations.VisibleForTesting;
import com.google.common.base.Ticker;
import com.hazelcast.cluster.Member;
import com.hazelcast.cluster.MembershipEvent;
import com.hazelcast.cluster.MembershipListener;
import com.hazelcast.core.HazelcastInstance;
import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.cluster.ClusterMember;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeRegistry;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The coordinator runtime. Every worker with {@code pdserve.coordinator.enabled} runs one; exactly
 * one of them leads at a time: the oldest member of the Hazelcast cluster list (identical and
 * ordered by age on every member) among those that are coordinator candidates ({@link
 * ClusterMember#COORDINATOR_ATTRIBUTE}). The leader records itself in the {@link CoordinatorLease}
 * (node id + term) so status shows it, and when its member leaves the next candidate takes over on
 * the membership event (a crashed member is dropped within the heartbeat bound).
 *
 * <p>The leader periodically reads the registry, asks its {@link SwitchPlanner}, and carries out at
 * most one switch at a time through the {@link SwitchExecutor} — the same SwitchRole path an
 * operator uses. It also removes registry entries whose member is gone. It switches nothing while
 * the membership settles: for {@code settle} after any member joined or left (a cluster that is
 * still starting looks like one with an empty role). The settle time and the planner's clock are
 * read from the {@link Timing#ticker()}; the ticks themselves run every {@link Timing#period()}.
 *
 * <p>Fencing: being the oldest candidate is not enough to act. The leader takes the {@link
 * CoordinatorLease} through {@link CoordinatorLeaseStore#acquire} (refused while a live member
 * holds it) and confirms its term on the lease's partition owner before removing orphans and before
 * every switch; a frozen former coordinator, or a member alone on its side of a split (the lease
 * map's split-brain protection), therefore never acts on a stale term.
 */
public final class RoleCoordinator implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(RoleCoordinator.class);

  /**
   * Waited after membership changes before switching anything, unless the timing says otherwise.
   */
  public static final Duration DEFAULT_SETTLE = Duration.ofSeconds(30);

  /**
   * When the coordinator looks and how long it waits.
   *
   * @param period time between two evaluations of the registry
   * @param settle no switch for this long after a member joined or left (and after start)
   * @param ticker the clock of the settle time and of the planner's {@code nowMillis}
   */
  public record Timing(Duration period, Duration settle, Ticker ticker) {
    public Timing {
      Objects.requireNonNull(period, "period");
      Objects.requireNonNull(settle, "settle");
      Objects.requireNonNull(ticker, "ticker");
    }

    /** Every {@code period}, settling for {@link #DEFAULT_SETTLE}, on the system ticker. */
    public static Timing every(Duration period) {
      return new Timing(period, DEFAULT_SETTLE, Ticker.systemTicker());
    }
  }

  private final HazelcastInstance hz;
  private final NodeRegistry registry;
  private final CoordinatorLeaseStore leases;
  private final String nodeId;
  private final SwitchPlanner planner;
  private final SwitchExecutor executor;
  private final ScheduledExecutorService ticks;
  private final ExecutorService switching;
  private final AtomicBoolean switchInFlight = new AtomicBoolean();
  private final UUID membership;
  private final Duration settle;
  private final Ticker ticker;
  private volatile long lastMembershipChangeNanos;
  private volatile boolean leading;
  private volatile CoordinatorLease lease;
  private volatile boolean closed;

  public RoleCoordinator(
      HazelcastInstance hz,
      NodeRegistry registry,
      String nodeId,
      Timing timing,
      SwitchPlanner planner,
      SwitchExecutor executor) {
    this.settle = timing.settle();
    this.ticker = timing.ticker();
    this.lastMembershipChangeNanos = ticker.read();
    this.hz = hz;
    this.registry = registry;
    this.leases = new CoordinatorLeaseStore(hz);
    this.nodeId = nodeId;
    this.planner = planner;
    this.executor = executor;
    this.ticks =
        Executors.newSingleThreadScheduledExecutor(
            new NamedThreadFactory("pdserve-coordinator-" + nodeId, true));
    this.switching =
        Executors.newSingleThreadExecutor(
            new NamedThreadFactory("pdserve-coordinator-switch-" + nodeId, true));
    this.membership =
        hz.getCluster()
            .addMembershipListener(
                new MembershipListener() {
                  @Override
                  public void memberAdded(MembershipEvent event) {
                    lastMembershipChangeNanos = ticker.read();
                    tickSoon();
                  }

                  @Override
                  public void memberRemoved(MembershipEvent event) {
                    lastMembershipChangeNanos = ticker.read();
                    tickSoon();
                  }
                });
    ticks.scheduleWithFixedDelay(this::tick, 0, timing.period().toMillis(), TimeUnit.MILLISECONDS);
  }

  /** Whether this node leads now. */
  public boolean isLeading() {
    return leading;
  }

  /** The lease this node holds while leading. */
  public Optional<CoordinatorLease> lease() {
    return leading ? Optional.ofNullable(lease) : Optional.empty();
  }

  /** Whether the oldest coordinator candidate of the cluster list is this member. */
  public static boolean elected(HazelcastInstance hz) {
    if (!hz.getLifecycleService().isRunning()) {
      return false;
    }
    for (Member m : hz.getCluster().getMembers()) {
      if ("true".equals(m.getAttribute(ClusterMember.COORDINATOR_ATTRIBUTE)) && !m.isLiteMember()) {
        return m.localMember();
      }
    }
    return false;
  }

  /**
   * Runs one evaluation on the coordinator's thread (after any that is running) and returns when it
   * is done.
   */
  @VisibleForTesting
  void tickNow() throws InterruptedException {
    try {
      ticks.submit(this::tick).get();
    } catch (ExecutionException e) {
      throw new IllegalStateException("coordinator tick failed", e.getCause());
    }
  }

  private void tickSoon() {
    try {
      ticks.execute(this::tick);
    } catch (RejectedExecutionException closing) {
      // closed
    }
  }

  private void tick() {
    if (closed) {
      return;
    }
    try {
      if (!elected(hz)) {
        stepDown("not the oldest candidate");
        return;
      }
      // The lease's term fences the coordinator: taken only from a holder that is no longer a
      // live member, and confirmed on the partition owner before every action.
      String me = hz.getCluster().getLocalMember().getUuid().toString();
      CoordinatorLease l = leases.acquire(nodeId, me, System.currentTimeMillis());
      if (l == null || !l.memberId().equals(me)) {
        stepDown(l == null ? "no lease" : "node " + l.nodeId() + " holds term " + l.term());
        return;
      }
      lease = l;
      if (!leading) {
        if (!leases.confirm(l)) {
          stepDown("term " + l.term() + " not confirmed");
          return;
        }
        leading = true;
        LOG.info("node {} is now the coordinator (term {})", nodeId, l.term());
        registry.removeOrphans();
      }
      long now = ticker.read();
      if (switchInFlight.get() || now - lastMembershipChangeNanos < settle.toNanos()) {
        return;
      }
      List<NodeInfo> nodes = registry.all();
      Optional<RoleSwitchRequest> plan = planner.plan(nodes, now / 1_000_000);
      if (plan.isEmpty()) {
        return;
      }
      RoleSwitchRequest req = plan.get();
      Optional<NodeInfo> node = nodes.stream().filter(n -> n.id().equals(req.nodeId())).findFirst();
      if (node.isEmpty()) {
        LOG.warn(
            "coordinator: the policy chose node {}, which is not in the registry", req.nodeId());
        return;
      }
      if (!leases.confirm(l)) {
        stepDown("term " + l.term() + " is no longer the cluster's");
        return;
      }
      switchInFlight.set(true);
      LOG.info(
          "coordinator (term {}) switching {} {} -> {} at epoch {}: {}",
          l.term(),
          req.nodeId(),
          node.get().role(),
          req.to(),
          req.expectedEpoch(),
          req.reason());
      switching.execute(
          () -> {
            try {
              RoleSwitchResult r = executor.execute(node.get(), req);
              LOG.info(
                  "coordinator: switch of {} {}: {}",
                  req.nodeId(),
                  r.accepted() ? "done" : "refused",
                  r.message());
            } catch (RuntimeException e) {
              LOG.warn("coordinator: switch of {} failed: {}", req.nodeId(), e.toString());
            } finally {
              switchInFlight.set(false);
            }
          });
    } catch (RuntimeException e) {
      if (!closed) {
        stepDown("tick failed: " + e);
        LOG.debug("coordinator tick failed", e);
      }
    }
  }

  private void stepDown(String why) {
    if (leading) {
      leading = false;
      LOG.info("node {} is no longer the coordinator: {}", nodeId, why);
    }
  }

  @Override
  public void close() {
    closed = true;
    if (leading) {
      try {
        leases.release(hz.getCluster().getLocalMember().getUuid().toString());
      } catch (RuntimeException e) {
        LOG.debug("could not release the coordinator lease: {}", e.toString());
      }
    }
    leading = false;
    try {
      hz.getCluster().removeMembershipListener(membership);
    } catch (RuntimeException ignored) {
      // the member is already gone
    }
    ticks.shutdownNow();
    switching.shutdownNow();
    try {
      ticks.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
