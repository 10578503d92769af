package dev.pdserve.decode;

import com.google.common.base.Ticker;
import dev.pdserve.core.coordination.DrainReport;
import dev.pdserve.core.kv.KvPush;
import dev.pdserve.core.kv.KvPusher;
import dev.pdserve.core.logging.LogContext;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Drains a decode node: it takes no new reservations, and while it migrates, the running sequences
 * leave the {@link ContinuousBatch} one by one — for each, a reservation on another decode node
 * ({@link MigrationTargets}), its KV pushed there ({@link KvPusher}), then its stream ends with
 * {@link TokenSink#onMigrated}. A sequence that cannot move goes back into the batch and finishes
 * here. The drain's bound is measured on the {@link Ticker}.
 */
final class SequenceMigrator {
  private static final Logger LOG = LogManager.getLogger(SequenceMigrator.class);

  /** How long the drain waits for a hand-off before it looks at the reservations again. */
  private static final Duration POLL = Duration.ofMillis(5);

  private final ContinuousBatch batch;
  private final ReservationTable reservations;
  private final TokenEmitter emitter;
  private final Ticker ticker;
  private final String nodeId = LogContext.nodeId();
  private final AtomicLong migrations = new AtomicLong();

  SequenceMigrator(
      ContinuousBatch batch, ReservationTable reservations, TokenEmitter emitter, Ticker ticker) {
    this.batch = batch;
    this.reservations = reservations;
    this.emitter = emitter;
    this.ticker = ticker;
  }

  /** Sequences moved to other decode nodes. */
  long migrations() {
    return migrations.get();
  }

  /**
   * See {@link DecodeEngine#drain}: migrates when both {@code targets} and {@code pusher} are
   * given, else lets everything finish here; returns once nothing is held or {@code timeout}
   * passed.
   */
  DrainReport drain(MigrationTargets targets, KvPusher pusher, Duration timeout) {
    long deadline = ticker.read() + timeout.toNanos();
    boolean migrate = targets != null && pusher != null;
    long endedBefore = reservations.sequencesEnded();
    int moved = 0;
    if (migrate) {
      batch.startHandOff(); // before accepting goes false: whoever sees the drain sees the hand-off
    }
    reservations.setAccepting(false);
    try {
      while (ticker.read() - deadline < 0) {
        DecodeSequence s = batch.pollHandedOff();
        if (s == null) {
          if (reservations.isEmpty()) {
            return new DrainReport(true, moved, endedSince(endedBefore), "");
          }
          try {
            s = batch.awaitHandedOff(POLL);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            break;
          }
          if (s == null) {
            continue;
          }
        }
        if (migrate(s, targets, pusher)) {
          moved++;
        } else {
          batch.giveBack(s);
        }
      }
      return new DrainReport(
          false,
          moved,
          endedSince(endedBefore),
          reservations.size() + " sequence(s) or reservation(s) still held");
    } finally {
      if (migrate) {
        batch.stopHandOff();
      }
    }
  }

  private int endedSince(long before) {
    return (int) (reservations.sequencesEnded() - before);
  }

  /** Moves one sequence taken out of the batch; false if it must stay (it then finishes here). */
  private boolean migrate(DecodeSequence s, MigrationTargets targets, KvPusher pusher) {
    String requestId = s.join.requestId();
    if (s.cancelled) {
      return false; // the decode thread reaps it
    }
    try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, requestId)) {
      int[] generated = s.state.generatedIds();
      int kvTokens = s.kv.length();
      int remaining = Math.max(1, s.state.params().maxTokens() - generated.length + 1);
      Optional<MigrationTarget> target;
      try {
        target = targets.reserve(requestId, kvTokens, remaining);
      } catch (RuntimeException e) {
        LOG.warn("no migration target for {}: {}", requestId, e.toString());
        return false;
      }
      if (target.isEmpty()) {
        LOG.info("no other decode node can take {}; it finishes here", requestId);
        return false;
      }
      MigrationTarget t = target.get();
      long t0 = System.nanoTime();
      try (KvPush out = pusher.open(t.kvEndpoint(), t.transferId())) {
        for (int layer = 0; layer < s.kv.pool().layout().layers(); layer++) {
          out.sendLayer(layer, s.kv, 0, kvTokens);
        }
        out.complete();
      } catch (RuntimeException e) {
        LOG.warn(
            "migrating {} to {} failed, it finishes here: {}", requestId, t.nodeId(), e.toString());
        targets.release(t);
        return false;
      }
      s.migrated = true;
      migrations.incrementAndGet();
      LOG.info(
          "migrated {} ({} KV positions, {} tokens generated) to decode node {} in {} ms",
          requestId,
          kvTokens,
          generated.length,
          t.nodeId(),
          (System.nanoTime() - t0) / 1_000_000);
      Migration m = new Migration(t, generated, s.positionDelta);
      reservations.free(s);
      emitter.migrated(s, m);
      return true;
    }
  }
}
