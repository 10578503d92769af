package dev.pdserve.decode;

import com.google.common.base.Ticker;
import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.coordination.DrainReport;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvIntake;
import dev.pdserve.core.kv.KvPusher;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.core.serving.ServingException;
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The decode role: reserves KV blocks for prefilled requests, receives their KV (through the node's
 * {@link KvIntake}), and runs continuous batching — one forward step for every running sequence,
 * sequences joining and leaving between steps — streaming each token to its request's {@link
 * TokenSink}.
 *
 * <p>A reservation covers the prompt and {@code max_tokens}, so a joined sequence never runs out of
 * KV. Every reservation ends freed: when its sequence finishes, is cancelled, fails, is never
 * joined within {@link DecodeOptions#reservationTtl()}, or its lease ({@link
 * DecodeOptions#lease()}) runs out because nobody renewed it ({@link #renewLeases}): its router or
 * prefill node is gone. Leases, the time to live, a join's wait for its KV ({@link
 * DecodeOptions#transferTimeout()}) and the drain bound are measured on the {@link Ticker} given.
 *
 * <p>A request may also join with {@link JoinRequest#localPrefill()}: the decode loop computes its
 * prompt's KV into the reservation itself (conditional disaggregation, for short prompts) and
 * samples its first token, with no KV transfer.
 *
 * <p>If the decode loop dies (a step threw an Error, such as an OutOfMemoryError for direct
 * memory), every reservation is freed and every stream fails with UNAVAILABLE saying so and that
 * continuing elsewhere is safe; new reservations and joins are refused the same way, and {@link
 * #loopDied()} tells the node (which stops advertising itself).
 *
 * <p>The parts: the {@link ReservationTable} (the ledger and its sweep), the {@link
 * ContinuousBatch} (the decode loop), the {@link SequenceMigrator} (drain) and the {@link
 * TokenEmitter} (sink calls off the loop). Measured through {@link DecodeMetrics}. Its threads log
 * under the node id of the log context it was built in; a request's lines carry its id, a step's
 * lines (and its expert dispatches) the id of the step's first sequence.
 */
public final class DecodeEngine implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(DecodeEngine.class);

  private final KvBlockPool pool;
  private final String nodeId = LogContext.nodeId();
  private final ReservationTable reservations;
  private final TokenEmitter emitter;
  private final ContinuousBatch batch;
  private final SequenceMigrator migrator;
  private final ScheduledExecutorService sweeper;
  private final long leaseMillis;
  private final CompletableFuture<String> loopDied = new CompletableFuture<>();

  /**
   * Starts an engine (its decode loop, token emitter and reservation sweeper threads) over {@code
   * resources}, which stay the caller's to close.
   *
   * @param ticker the clock of leases, time to live, KV transfer timeout and drain bound ({@link
   *     Ticker#systemTicker()} in production)
   */
  public DecodeEngine(
      DecodeResources resources, DecodeOptions options, DecodeMetrics metrics, Ticker ticker) {
    this.pool = resources.pool();
    this.leaseMillis = options.lease().toMillis();
    this.reservations = new ReservationTable(pool, resources.kvIntake(), options, ticker, nodeId);
    this.emitter = new TokenEmitter(nodeId);
    this.batch = new ContinuousBatch(resources, options, metrics, reservations, emitter);
    this.migrator = new SequenceMigrator(batch, reservations, emitter, ticker);
    batch.loopDied().thenAccept(this::loopDied);
    batch.start();
    this.sweeper =
        Executors.newSingleThreadScheduledExecutor(
            new NamedThreadFactory("decode-reservation-sweeper", true, nodeId));
    long sweepMillis = sweepPeriodMillis(options);
    sweeper.scheduleWithFixedDelay(
        this::sweepReservations, sweepMillis, sweepMillis, TimeUnit.MILLISECONDS);
  }

  /** A quarter of the shortest time the sweep decides, within 50 ms .. 1 s. */
  private static long sweepPeriodMillis(DecodeOptions options) {
    long shortest =
        Math.min(
            options.lease().toMillis(),
            Math.min(options.reservationTtl().toMillis(), options.transferTimeout().toMillis()));
    return Math.max(50, Math.min(1000, shortest / 4));
  }

  /**
   * Sets aside KV for a prompt of {@code promptTokens} and up to {@code maxTokens} generated
   * tokens, and registers the transfer the prefill node will push into it.
   *
   * @throws ServingException RESOURCE_EXHAUSTED when the pool has not enough free blocks
   */
  public Reservation reserve(String requestId, int promptTokens, int maxTokens) {
    return reservations.reserve(requestId, promptTokens, maxTokens);
  }

  /** How long a reservation lives without a renewal. */
  public long leaseMillis() {
    return leaseMillis;
  }

  /**
   * Extends the leases of these reservations (and of the requests decoding in them) by one lease
   * from now. Returns the ids this node does not hold: finished, released or expired.
   */
  public List<String> renewLeases(Collection<String> transferIds) {
    return reservations.renewLeases(transferIds);
  }

  /** Frees a reservation that no request will use; false if it is unknown or already joined. */
  public boolean release(String transferId) {
    return reservations.release(transferId);
  }

  /**
   * Joins a prefilled request: once its KV has fully arrived, its first token is emitted and it
   * decodes with the running batch. Events go to {@code sink}; errors too (never thrown later).
   */
  public void join(JoinRequest req, TokenSink sink) {
    batch.admitJoined(reservations.join(req, null, sink));
  }

  /**
   * Continues a sequence that migrated here from another decode node: its reservation holds the KV
   * of the prompt and of every generated token but the last ({@code generatedIds}, already streamed
   * by the old node), pushed by that node. Once the KV is complete it rejoins the batch and streams
   * the tokens after {@code generatedIds} to {@code sink}. {@code req.firstToken()} is not used.
   * With {@link JoinRequest#localPrefill()} nothing is pushed: the decode loop computes that KV
   * itself (a router continuing a request whose decode node was lost, when it is short).
   */
  public void resume(JoinRequest req, int[] generatedIds, TokenSink sink) {
    if (generatedIds == null || generatedIds.length == 0) {
      throw ServingException.invalid(
          "resuming request " + req.requestId() + " needs the tokens it generated so far");
    }
    batch.admitJoined(reservations.join(req, generatedIds.clone(), sink));
  }

  /** Cancels a request by id: it stops within one step and its KV is freed. */
  public boolean cancel(String requestId) {
    Optional<DecodeSequence> s = reservations.joined(requestId);
    if (s.isEmpty()) {
      return false;
    }
    reservations.cancel(s.get());
    batch.wake();
    return true;
  }

  /**
   * Drains this node for a role switch: it takes no new reservations; running sequences move to
   * other decode nodes — for each, a reservation on a target ({@code targets}), its KV pushed there
   * ({@code pusher}), then the sequence's stream ends with {@link TokenSink#onMigrated} so the
   * caller continues on the target. A sequence no target takes (or all of them, when {@code
   * targets} or {@code pusher} is null) finishes here. Reservations already made (prefills under
   * way) are waited for, joined, and then moved the same way.
   *
   * <p>Returns once this node holds no sequence and no reservation, or when {@code timeout} passes
   * on the engine's ticker (then {@code drained} is false and the remaining work goes on here).
   */
  public DrainReport drain(MigrationTargets targets, KvPusher pusher, Duration timeout) {
    return migrator.drain(targets, pusher, timeout);
  }

  /** Lets this engine take new reservations (true) or refuse them with UNAVAILABLE (false). */
  public void setAccepting(boolean accepting) {
    reservations.setAccepting(accepting);
  }

  public boolean accepting() {
    return reservations.accepting();
  }

  /** KV blocks held by reservations (reserved, waiting for their KV, or running). */
  public int reservedBlocks() {
    return reservations.reservedBlocks();
  }

  /** Reservations freed because their lease ran out. */
  public long leasesExpired() {
    return reservations.leasesExpired();
  }

  /** Requests this node prefilled itself ({@link JoinRequest#localPrefill()}). */
  public long localPrefills() {
    return batch.localPrefills();
  }

  /** Prompt tokens this node prefilled itself. */
  public long localPrefillTokens() {
    return batch.localPrefillTokens();
  }

  /** Sequences this node moved to other decode nodes. */
  public long migrations() {
    return migrator.migrations();
  }

  public DecodeStats stats() {
    return new DecodeStats(
        batch.running(),
        reservations.waitingForKv(),
        reservations.size(),
        pool.freeBlocks(),
        pool.totalBlocks(),
        batch.steps(),
        batch.tokens(),
        batch.maxBatchSeen(),
        batch.meanBatch(),
        batch.lastStepMillis());
  }

  /**
   * The decode loop died (on its thread, which touches no sequence now): every reservation —
   * reserved, waiting for its KV, or decoding — is freed and its stream fails with UNAVAILABLE
   * saying so; new reservations and joins are refused the same way.
   */
  private void loopDied(Throwable cause) {
    String why =
        (nodeId == null ? "this decode node" : "decode node " + nodeId)
            + "'s step loop died ("
            + cause.getClass().getSimpleName()
            + (cause.getMessage() == null ? "" : ": " + cause.getMessage())
            + ")";
    reservations.loopDied(why);
    List<DecodeSequence> freed = reservations.freeAll();
    for (DecodeSequence s : freed) {
      emitter.error(s, reservations.loopDeadError(s.requestId()));
    }
    LOG.warn(
        "{}: {} reservations it held freed, their streams failed; new requests are refused",
        why,
        freed.size());
    loopDied.complete(why);
  }

  /**
   * Completes, with what happened, when the engine's decode loop died and the engine stopped (its
   * requests failed, their KV freed, new ones refused); never completes while the loop runs. Its
   * actions run on the dead loop's thread.
   */
  public CompletionStage<String> loopDied() {
    return loopDied.minimalCompletionStage();
  }

  /**
   * Frees what time has run out on ({@link ReservationTable#sweep}); the engine's sweeper thread
   * calls it periodically, tests call it after moving their ticker.
   */
  void sweepReservations() {
    try {
      if (reservations.sweep()) {
        batch.wake();
      }
    } catch (RuntimeException e) {
      LOG.error("sweeping the KV reservations failed", e); // the next sweep tries again
    }
  }

  @Override
  public void close() {
    reservations.close();
    batch.close();
    sweeper.shutdownNow();
    try {
      sweeper.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    for (DecodeSequence s : reservations.freeAll()) {
      emitter.error(
          s,
          ServingException.unavailable(
              "node shutting down: decode node "
                  + nodeId
                  + " stopped before request "
                  + s.requestId()
                  + " finished (no other decode node took it in time); retry the request"));
    }
    emitter.close();
  }
}
