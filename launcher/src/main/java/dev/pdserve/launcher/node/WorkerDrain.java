package dev.pdserve.launcher.node;

import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.coordination.DrainReport;
import dev.pdserve.core.kv.flight.KvTransferClient;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.decode.DecodeEngine;
import dev.pdserve.decode.MigrationTargets;
import dev.pdserve.prefill.PrefillEngine;
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
 * The engine part of a worker's shutdown drain, once both engines refuse new work: prefills held
 * are finished and their KV handed over; decode sequences run on until {@code migrateAt}, then
 * those still running move to other decode nodes (the role-switch migration path, {@link
 * DecodeEngine#drain}); a sequence no node takes runs on until the deadline. It runs on its own
 * thread and is waited for until the deadline plus {@link #PEER_SLACK_MILLIS}, so a hung peer (a
 * migration target, a decode node not taking KV) cannot hold the shutdown.
 */
final class WorkerDrain {
  private static final Logger LOG = LogManager.getLogger(WorkerDrain.class);

  /** How long past the deadline a drain step stuck on a peer is waited for. */
  static final long PEER_SLACK_MILLIS = 2000;

  /** Sequences and prefills that ended here, and sequences moved to other decode nodes. */
  record Outcome(int finished, int migrated) {}

  private WorkerDrain() {}

  static Outcome run(
      String nodeId,
      PrefillEngine prefill,
      DecodeEngine decode,
      MigrationTargets targets,
      KvTransferClient client,
      Deadline deadline,
      Deadline migrateAt,
      Runnable migrating) {
    AtomicInteger finished = new AtomicInteger();
    AtomicInteger migrated = new AtomicInteger();
    ExecutorService thread =
        Executors.newSingleThreadExecutor(new NamedThreadFactory("drain", true, nodeId));
    try {
      Future<?> work =
          thread.submit(
              () -> {
                try (var ctx = LogContext.node(nodeId)) {
                  DrainReport p = prefill.drain(deadline.remaining());
                  finished.addAndGet(p.finishedLocally());
                  DrainReport local = decode.drain(null, null, migrateAt.remaining());
                  finished.addAndGet(local.finishedLocally());
                  if (!local.drained() && !deadline.passed()) {
                    migrating.run();
                    DrainReport moved = decode.drain(targets, client, deadline.remaining());
                    finished.addAndGet(moved.finishedLocally());
                    migrated.addAndGet(moved.migrated());
                  }
                }
              });
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
    return new Outcome(finished.get(), migrated.get());
  }
}
