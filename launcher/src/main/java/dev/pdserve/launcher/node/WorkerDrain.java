package dev.pdserve.launcher.node;

import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.coordination.DrainReport;
import dev.pdserve.core.logging.LogContext;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * A worker's steps of the shutdown drain. Readiness names go NOT_SERVING, role switches are
 * refused, the coordinator steps down; once the entry is DRAINING both engines refuse new work.
 * Then prefills held are finished and their KV handed over; decode sequences run on until {@code
 * migrateAt}, then those still running move to other decode nodes (the role-switch migration path);
 * a sequence no node takes runs on until the deadline. The engine part runs on its own thread
 * ({@code drain-0}) and is waited for until the deadline plus {@link #PEER_SLACK_MILLIS}, so a hung
 * peer (a migration target, a decode node not taking KV) cannot hold the shutdown.
 */
final class WorkerDrain implements NodeDrain {
  private static final Logger LOG = LogManager.getLogger(WorkerDrain.class);

  /** How long past the deadline a drain step stuck on a peer is waited for. */
  static final long PEER_SLACK_MILLIS = 2000;

  private final String nodeId;
  private final WorkerEngines engines;
  private final WorkerRoles roles;
  private final Runnable stepDown;
  private final Deadline migrateAt;
  private final AtomicInteger finished = new AtomicInteger();
  private final AtomicInteger migrated = new AtomicInteger();

  /**
   * @param stepDown stops this worker's coordinator, if it runs one
   * @param migrateAt when decode sequences still running start to move to other decode nodes
   */
  WorkerDrain(
      String nodeId,
      WorkerEngines engines,
      WorkerRoles roles,
      Runnable stepDown,
      Deadline migrateAt) {
    this.nodeId = nodeId;
    this.engines = engines;
    this.roles = roles;
    this.stepDown = stepDown;
    this.migrateAt = migrateAt;
  }

  @Override
  public String describe() {
    return "worker " + nodeId + ", role " + WorkerRoles.name(roles.role());
  }

  @Override
  public void stopServing() {
    roles.shutDown("node " + nodeId + " is shutting down");
    stepDown.run();
  }

  @Override
  public Held held() {
    return engines.held();
  }

  @Override
  public void refuseNewWork() {
    engines.prefill().setAccepting(false);
    engines.decode().setAccepting(false);
  }

  @Override
  public void awaitWork(Deadline deadline, Runnable migrating) {
    ExecutorService thread =
        Executors.newSingleThreadExecutor(new NamedThreadFactory("drain", true, nodeId));
    try {
      Future<?> work = thread.submit(() -> drainEngines(deadline, migrating));
      work.get(deadline.remaining().toMillis() + PEER_SLACK_MILLIS, TimeUnit.MILLISECONDS);
    } catch (TimeoutException e) {
      LOG.warn("drain of {} still busy past its timeout (a peer may hang); closing", nodeId);
    } catch (ExecutionException e) {
      LOG.warn("drain of {} failed; closing", nodeId, e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      thread.shutdownNow();
    }
  }

  private void drainEngines(Deadline deadline, Runnable migrating) {
    try (var ctx = LogContext.node(nodeId)) {
      DrainReport p = engines.prefill().drain(deadline.remaining());
      finished.addAndGet(p.finishedLocally());
      DrainReport local = engines.finishDecode(migrateAt.remaining());
      finished.addAndGet(local.finishedLocally());
      if (!local.drained() && !deadline.passed()) {
        migrating.run();
        DrainReport moved = engines.migrateDecode(deadline.remaining());
        finished.addAndGet(moved.finishedLocally());
        migrated.addAndGet(moved.migrated());
      }
    }
  }

  @Override
  public Tally tally(Held atStart) {
    return new Tally(finished.get(), migrated.get(), engines.unfinished());
  }
}
