package dev.pdserve.decode;

import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.PagedSequenceKv;
import dev.pdserve.core.kv.flight.IncomingTransfer;
import dev.pdserve.core.kv.flight.KvTransferServer;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.engine.Emission;
import dev.pdserve.model.engine.ExpertBackend;
import dev.pdserve.model.engine.GenerationState;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.engine.SequenceStep;
import dev.pdserve.model.sampling.SampleResult;
import dev.pdserve.model.sampling.Sampler;
import dev.pdserve.model.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The decode role: reserves KV blocks for prefilled requests, receives their KV over Flight
 * (through the {@link KvTransferServer}), and runs continuous batching — one forward step for every
 * running sequence, sequences joining and leaving between steps — streaming each token to its
 * request's {@link TokenSink}.
 *
 * <p>A reservation covers the prompt and {@code max_tokens}, so a joined sequence never runs out of
 * KV. Every reservation ends freed: when its sequence finishes, is cancelled, fails, is never
 * joined within {@link DecodeOptions#reservationTtl()}, or its lease ({@link
 * DecodeOptions#lease()}) runs out because nobody renewed it ({@link #renewLeases}): its router or
 * prefill node is gone.
 *
 * <p>A request may also join with {@link JoinRequest#localPrefill()}: the decode loop computes its
 * prompt's KV into the reservation itself (conditional disaggregation, for short prompts) and
 * samples its first token, with no KV transfer.
 *
 * <p>Measured through {@link DecodeMetrics}. Its threads log under the node id of the log context
 * it was built in; a request's lines carry its id, a step's lines (and its expert dispatches) the
 * id of the step's first sequence.
 */
public final class DecodeEngine implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(DecodeEngine.class);

  private final ModelRunner runner;
  private final ExpertBackend experts;
  private final KvBlockPool pool;
  private final KvTransferServer transfers;
  private final Tokenizer tokenizer;
  private final DecodeOptions options;
  private final DecodeMetrics metrics;
  private final String nodeId = LogContext.nodeId();

  /** KV blocks held by reservations (reserved, waiting for KV, or running). */
  private final java.util.concurrent.atomic.AtomicInteger reservedBlocks =
      new java.util.concurrent.atomic.AtomicInteger();

  /** Reservations by transfer id, from reserve until freed. */
  private final Map<String, Slot> slots = new ConcurrentHashMap<>();

  /** Request id → transfer id of a joined request (for cancel by request id). */
  private final Map<String, String> byRequest = new ConcurrentHashMap<>();

  private final ConcurrentLinkedQueue<Slot> admissions = new ConcurrentLinkedQueue<>();
  private final List<Slot> running = new ArrayList<>(); // decode thread only
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition wake = lock.newCondition();
  private final Thread loop;

  /**
   * Hands tokens to sinks (gRPC writes) off the decode loop, in order, so I/O never delays a step.
   */
  private final java.util.concurrent.ExecutorService emitter;

  private final java.util.concurrent.ScheduledExecutorService sweeper;
  private volatile boolean closed;

  private final java.util.concurrent.atomic.AtomicLong leasesExpired =
      new java.util.concurrent.atomic.AtomicLong();
  private final java.util.concurrent.atomic.AtomicLong localPrefills =
      new java.util.concurrent.atomic.AtomicLong();
  private final java.util.concurrent.atomic.AtomicLong localPrefillTokens =
      new java.util.concurrent.atomic.AtomicLong();

  // ---- role switching: draining and migration ----
  /** False while the node drains (or serves the other role): new reservations are refused. */
  private volatile boolean accepting = true;

  /**
   * Set while a drain migrates: the decode thread hands every running sequence to {@link #handoff}.
   */
  private volatile boolean migrateAll;

  private volatile boolean draining;
  private final ConcurrentLinkedQueue<Slot> handoff = new ConcurrentLinkedQueue<>();

  /** Sequences whose migration failed: back into the batch, to finish here. */
  private final ConcurrentLinkedQueue<Slot> returned = new ConcurrentLinkedQueue<>();

  private final java.util.concurrent.atomic.AtomicLong migrations =
      new java.util.concurrent.atomic.AtomicLong();
  private final java.util.concurrent.atomic.AtomicInteger finishedWhileDraining =
      new java.util.concurrent.atomic.AtomicInteger();

  private volatile long steps;
  private volatile long tokens;
  private volatile long batchSum;
  private volatile int maxBatchSeen;
  private volatile double lastStepMillis;
  private int rotation;

  /** One reservation's life: reserved → joined (waiting for KV) → running → freed. */
  private final class Slot {
    final Reservation reservation;
    final long reservedAtNanos = System.nanoTime();
    volatile long leaseDeadlineNanos = reservedAtNanos + options.lease().toNanos();
    volatile IncomingTransfer incoming;
    volatile JoinRequest join;
    volatile TokenSink sink;
    volatile boolean cancelled;
    PagedSequenceKv kv; // decode thread
    GenerationState state; // decode thread
    int lastToken; // decode thread
    boolean freed; // guarded by this
    volatile int[] resumed; // tokens generated elsewhere, when this sequence migrated in
    boolean pinned; // its migration failed: it finishes on this node (decode thread)
    volatile boolean migrated;

    final int blockCount;

    Slot(Reservation r) {
      this.reservation = r;
      this.blockCount = r.blocks().length;
    }

    String transferId() {
      return reservation.transferId();
    }

    /**
     * Frees the blocks exactly once (cancelling the transfer first, so nothing writes into them).
     */
    synchronized void free() {
      if (freed) {
        return;
      }
      freed = true;
      transfers.cancel(transferId());
      slots.remove(transferId()); // first, so the reserved-blocks gauge never lags the pool
      reservedBlocks.addAndGet(-blockCount);
      if (join != null) {
        byRequest.remove(join.requestId(), transferId());
        if (draining && !migrated) {
          finishedWhileDraining.incrementAndGet();
        }
      }
      if (kv != null) {
        kv.release();
      } else {
        pool.free(reservation.blocks());
      }
    }
  }

  public DecodeEngine(
      ModelRunner runner,
      ExpertBackend experts,
      KvBlockPool pool,
      KvTransferServer transfers,
      Tokenizer tokenizer,
      DecodeOptions options) {
    this(runner, experts, pool, transfers, tokenizer, options, DecodeMetrics.NONE);
  }

  public DecodeEngine(
      ModelRunner runner,
      ExpertBackend experts,
      KvBlockPool pool,
      KvTransferServer transfers,
      Tokenizer tokenizer,
      DecodeOptions options,
      DecodeMetrics metrics) {
    this.metrics = metrics;
    this.runner = runner;
    this.experts = experts;
    this.pool = pool;
    this.transfers = transfers;
    this.tokenizer = tokenizer;
    this.options = options;
    this.emitter =
        java.util.concurrent.Executors.newSingleThreadExecutor(
            new NamedThreadFactory("decode-emit", true, nodeId));
    this.loop = NamedThreadFactory.thread("decode-loop", true, nodeId, this::loop);
    this.loop.start();
    this.sweeper =
        java.util.concurrent.Executors.newSingleThreadScheduledExecutor(
            new NamedThreadFactory("decode-reservation-sweeper", true, nodeId));
    long sweepMillis = Math.max(50, Math.min(1000, options.lease().toMillis() / 4));
    this.sweeper.scheduleWithFixedDelay(
        this::sweep, sweepMillis, sweepMillis, TimeUnit.MILLISECONDS);
  }

  /**
   * Sets aside KV for a prompt of {@code promptTokens} and up to {@code maxTokens} generated
   * tokens, and registers the transfer the prefill node will push into it.
   *
   * @throws ServingException RESOURCE_EXHAUSTED when the pool has not enough free blocks
   */
  public Reservation reserve(String requestId, int promptTokens, int maxTokens) {
    if (closed) {
      throw ServingException.unavailable("decode node is shutting down");
    }
    if (!accepting) {
      throw ServingException.unavailable(
          "this node is not taking decode work (draining or serving the prefill role); choose another decode node");
    }
    if (promptTokens < 1 || maxTokens < 1) {
      throw ServingException.invalid(
          "reserve needs prompt_tokens >= 1 and max_tokens >= 1, got "
              + promptTokens
              + " and "
              + maxTokens);
    }
    int needed = pool.layout().blocksFor(promptTokens + maxTokens);
    if (needed > pool.totalBlocks()) {
      throw ServingException.exhausted(
          "request needs "
              + needed
              + " KV blocks ("
              + (promptTokens + maxTokens)
              + " tokens) but this decode node's pool holds only "
              + pool.totalBlocks()
              + "; lower max_tokens or shorten the prompt");
    }
    int[] blocks;
    try {
      blocks = pool.allocate(needed);
    } catch (dev.pdserve.core.kv.KvPoolExhaustedException e) {
      throw ServingException.exhausted(
          "decode KV pool is full ("
              + e.free()
              + " of "
              + pool.totalBlocks()
              + " blocks free, "
              + needed
              + " needed); retry shortly");
    }
    String transferId = requestId + "/" + UUID.randomUUID().toString().substring(0, 8);
    Reservation r = new Reservation(transferId, requestId, blocks, promptTokens, maxTokens);
    Slot slot = new Slot(r);
    reservedBlocks.addAndGet(slot.blockCount);
    slots.put(transferId, slot);
    try {
      slot.incoming = transfers.expect(transferId, blocks, promptTokens);
    } catch (RuntimeException e) {
      slot.free();
      throw e;
    }
    try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, requestId)) {
      LOG.debug(
          "reserved {} KV blocks for request {} ({} prompt + {} max tokens), transfer {}",
          blocks.length,
          requestId,
          promptTokens,
          maxTokens,
          transferId);
    }
    return r;
  }

  /** How long a reservation lives without a renewal. */
  public long leaseMillis() {
    return options.lease().toMillis();
  }

  /**
   * Extends the leases of these reservations (and of the requests decoding in them) by one lease
   * from now. Returns the ids this node does not hold: finished, released or expired.
   */
  public java.util.List<String> renewLeases(java.util.Collection<String> transferIds) {
    long until = System.nanoTime() + options.lease().toNanos();
    java.util.List<String> unknown = new ArrayList<>();
    for (String id : transferIds) {
      Slot s = slots.get(id);
      if (s == null) {
        unknown.add(id);
      } else {
        s.leaseDeadlineNanos = until;
      }
    }
    return unknown;
  }

  /** Reservations freed because their lease ran out. */
  public long leasesExpired() {
    return leasesExpired.get();
  }

  /** Requests this node prefilled itself ({@link JoinRequest#localPrefill()}). */
  public long localPrefills() {
    return localPrefills.get();
  }

  /** Prompt tokens this node prefilled itself. */
  public long localPrefillTokens() {
    return localPrefillTokens.get();
  }

  /** Frees a reservation that no request will use; false if it is unknown or already joined. */
  public boolean release(String transferId) {
    Slot s = slots.get(transferId);
    if (s == null || s.join != null) {
      return false;
    }
    s.free();
    return true;
  }

  /**
   * Joins a prefilled request: once its KV has fully arrived, its first token is emitted and it
   * decodes with the running batch. Events go to {@code sink}; errors too (never thrown later).
   */
  public void join(JoinRequest req, TokenSink sink) {
    join(req, null, sink);
  }

  /**
   * Continues a sequence that migrated here from another decode node: its reservation holds the KV
   * of the prompt and of every generated token but the last ({@code generatedIds}, already streamed
   * by the old node), pushed by that node. Once the KV is complete it rejoins the batch and streams
   * the tokens after {@code generatedIds} to {@code sink}. {@code req.firstToken()} is not used.
   */
  public void resume(JoinRequest req, int[] generatedIds, TokenSink sink) {
    if (generatedIds == null || generatedIds.length == 0) {
      throw ServingException.invalid(
          "resuming request " + req.requestId() + " needs the tokens it generated so far");
    }
    join(req, generatedIds.clone(), sink);
  }

  private void join(JoinRequest req, int[] generatedIds, TokenSink sink) {
    Slot s = slots.get(req.transferId());
    if (s == null) {
      throw ServingException.notFound(
          "no KV reservation " + req.transferId() + " on this decode node (expired or released)");
    }
    if (!s.reservation.requestId().equals(req.requestId())) {
      throw ServingException.invalid(
          "reservation " + req.transferId() + " belongs to request " + s.reservation.requestId());
    }
    int kvTokens = req.promptIds().length + (generatedIds == null ? 0 : generatedIds.length - 1);
    if (kvTokens != s.reservation.promptTokens()) {
      throw ServingException.invalid(
          "request "
              + req.requestId()
              + " has "
              + kvTokens
              + " KV positions (prompt "
              + req.promptIds().length
              + (generatedIds == null ? "" : " + " + (generatedIds.length - 1) + " generated")
              + "); its reservation is for "
              + s.reservation.promptTokens());
    }
    synchronized (s) {
      if (s.join != null) {
        throw new ServingException(
            ServingException.Kind.ALREADY_EXISTS, "request " + req.requestId() + " already joined");
      }
      if (s.freed) {
        throw ServingException.notFound("reservation " + req.transferId() + " was freed");
      }
      s.join = req;
      s.sink = sink;
      s.resumed = generatedIds;
    }
    byRequest.put(req.requestId(), req.transferId());
    if (req.localPrefill()) {
      transfers.cancel(req.transferId()); // nothing is pushed: no stray push may write the blocks
      admissions.add(s);
      signal();
      return;
    }
    try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, req.requestId())) {
      LOG.debug(
          "request {} joined (first token {}); {} of its KV layers here",
          req.requestId(),
          req.firstToken(),
          s.incoming.layersReceived());
    }
    s.incoming
        .completion()
        .orTimeout(options.transferTimeout().toMillis(), TimeUnit.MILLISECONDS)
        .whenComplete(
            (done, err) -> {
              if (err == null) {
                metrics.kvReceived(done.bytesReceived(), done.receiveNanos());
                admissions.add(s);
                signal();
                return;
              }
              Throwable cause =
                  err instanceof java.util.concurrent.CompletionException && err.getCause() != null
                      ? err.getCause()
                      : err;
              ServingException failure =
                  cause instanceof TimeoutException
                      ? ServingException.deadline(
                          "KV for request "
                              + req.requestId()
                              + " did not arrive within "
                              + options.transferTimeout())
                      : s.cancelled
                          ? ServingException.cancelled(
                              "request " + req.requestId() + " was cancelled")
                          : ServingException.unavailable(
                              "KV transfer for request "
                                  + req.requestId()
                                  + " failed: "
                                  + cause.getMessage(),
                              cause);
              s.free();
              try (CloseableThreadContext.Instance ctx =
                  LogContext.request(nodeId, req.requestId())) {
                LOG.debug(
                    "request {} fails before decoding: {}", req.requestId(), failure.toString());
              }
              safeError(s, failure);
            });
  }

  /** Cancels a request by id: it stops within one step and its KV is freed. */
  public boolean cancel(String requestId) {
    String transferId = byRequest.get(requestId);
    if (transferId == null) {
      return false;
    }
    Slot s = slots.get(transferId);
    if (s == null) {
      return false;
    }
    s.cancelled = true;
    transfers.cancel(transferId); // a request still waiting for KV fails now
    signal();
    return true;
  }

  /** KV blocks held by reservations (reserved, waiting for their KV, or running). */
  public int reservedBlocks() {
    return reservedBlocks.get();
  }

  /** Lets this engine take new reservations (true) or refuse them with UNAVAILABLE (false). */
  public void setAccepting(boolean accepting) {
    this.accepting = accepting;
  }

  public boolean accepting() {
    return accepting;
  }

  /** Sequences this node moved to other decode nodes. */
  public long migrations() {
    return migrations.get();
  }

  /**
   * Drains this node for a role switch: it takes no new reservations; running sequences move to
   * other decode nodes — for each, a reservation on a target ({@code targets}), its KV pushed over
   * Arrow Flight ({@code client}), then the sequence's stream ends with {@link
   * TokenSink#onMigrated} so the caller continues on the target. A sequence no target takes (or all
   * of them, when {@code targets} is null) finishes here. Reservations already made (prefills under
   * way) are waited for, joined, and then moved the same way.
   *
   * <p>Returns once this node holds no sequence and no reservation, or when {@code timeout} passes
   * (then {@code drained} is false and the remaining work goes on here).
   */
  public dev.pdserve.core.coordination.DrainReport drain(
      MigrationTargets targets,
      dev.pdserve.core.kv.flight.KvTransferClient client,
      java.time.Duration timeout) {
    long deadline = System.nanoTime() + timeout.toNanos();
    accepting = false;
    finishedWhileDraining.set(0);
    draining = true;
    int moved = 0;
    try {
      migrateAll = targets != null && client != null;
      signal();
      while (System.nanoTime() < deadline) {
        Slot s = handoff.poll();
        if (s != null) {
          if (migrate(s, targets, client)) {
            moved++;
          } else {
            returned.add(s);
            signal();
          }
          continue;
        }
        if (slots.isEmpty()) {
          return new dev.pdserve.core.coordination.DrainReport(
              true, moved, finishedWhileDraining.get(), "");
        }
        try {
          Thread.sleep(5);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          break;
        }
      }
      migrateAll = false;
      Slot s;
      while ((s = handoff.poll()) != null) {
        returned.add(s);
      }
      signal();
      return new dev.pdserve.core.coordination.DrainReport(
          false,
          moved,
          finishedWhileDraining.get(),
          slots.size() + " sequence(s) or reservation(s) still held");
    } finally {
      migrateAll = false;
      draining = false;
    }
  }

  /** Moves one sequence taken out of the batch; false if it must stay (it then finishes here). */
  private boolean migrate(
      Slot s, MigrationTargets targets, dev.pdserve.core.kv.flight.KvTransferClient client) {
    String requestId = s.join.requestId();
    if (s.cancelled) {
      return false; // the decode thread reaps it
    }
    try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, requestId)) {
      int[] generated = s.state.generatedIds();
      int kvTokens = s.kv.length();
      int remaining = Math.max(1, s.state.params().maxTokens() - generated.length + 1);
      java.util.Optional<MigrationTarget> target;
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
      try (dev.pdserve.core.kv.flight.OutgoingTransfer out =
          client.open(
              org.apache.arrow.flight.Location.forGrpcInsecure(t.flightHost(), t.flightPort()),
              t.transferId())) {
        for (int layer = 0; layer < pool.layout().layers(); layer++) {
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
      Migration m = new Migration(t, generated);
      s.free();
      emitter.execute(
          () -> {
            try {
              s.sink.onMigrated(m);
            } catch (RuntimeException ex) {
              LOG.warn("token sink of {} failed: {}", requestId, ex.toString());
            }
          });
      return true;
    }
  }

  public DecodeStats stats() {
    long st = steps;
    int waiting = 0;
    for (Slot s : slots.values()) {
      if (s.join != null && s.kv == null) {
        waiting++;
      }
    }
    return new DecodeStats(
        runningCount,
        waiting,
        slots.size(),
        pool.freeBlocks(),
        pool.totalBlocks(),
        st,
        tokens,
        maxBatchSeen,
        st == 0 ? 0 : (double) batchSum / st,
        lastStepMillis);
  }

  private volatile int runningCount;

  private void signal() {
    lock.lock();
    try {
      wake.signalAll();
    } finally {
      lock.unlock();
    }
  }

  private void loop() {
    Sampler sampler = new Sampler(tokenizer.eosId());
    while (!closed) {
      try {
        admit(sampler);
        reapCancelled();
        exchangeForMigration();
        runningCount = running.size();
        if (running.isEmpty()) {
          lock.lock();
          try {
            if (admissions.isEmpty() && !closed) {
              wake.await(50, TimeUnit.MILLISECONDS);
            }
          } finally {
            lock.unlock();
          }
          continue;
        }
        step(sampler);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      } catch (RuntimeException e) {
        LOG.error("decode loop error", e);
      }
    }
  }

  /**
   * Takes requests whose KV arrived (or that prefill here) into the batch, emitting their first
   * token.
   */
  private void admit(Sampler sampler) {
    Slot s;
    while ((s = admissions.poll()) != null) {
      JoinRequest j = s.join;
      if (s.cancelled) {
        s.free();
        safeError(s, ServingException.cancelled("request " + j.requestId() + " was cancelled"));
        continue;
      }
      try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, j.requestId())) {
        try {
          if (s.resumed != null) {
            rejoin(s);
            continue;
          }
          s.state =
              new GenerationState(j.requestId(), j.promptIds(), j.params(), j.seed(), tokenizer);
          int firstToken;
          double firstLogprob;
          if (j.localPrefill()) {
            s.kv = PagedSequenceKv.withReservation(pool, s.reservation.blocks());
            float[] logits =
                runner.forward(List.of(SequenceStep.text(j.promptIds(), s.kv, true)), experts)[0];
            SampleResult r = s.state.sample(logits, sampler);
            firstToken = r.tokenId();
            firstLogprob = r.logprob();
            localPrefills.incrementAndGet();
            localPrefillTokens.addAndGet(j.promptIds().length);
          } else {
            s.kv = PagedSequenceKv.adopt(pool, s.reservation.blocks(), j.promptIds().length);
            firstToken = j.firstToken();
            firstLogprob = j.firstLogprob();
          }
          Emission first = s.state.accept(firstToken, firstLogprob);
          s.lastToken = firstToken;
          tokens++;
          metrics.firstToken();
          safeToken(s, first);
          if (first.finished()) {
            s.free();
            finished(s, first);
          } else {
            running.add(s);
            LOG.debug(
                "request {} decoding: {}, first token emitted, {} sequences running",
                j.requestId(),
                j.localPrefill() ? "prefilled here" : "its KV arrived",
                running.size());
          }
        } catch (RuntimeException e) {
          s.free();
          LOG.warn("request {} could not join the batch: {}", j.requestId(), e.toString());
          safeError(s, e);
        }
      }
    }
  }

  /**
   * A migrated sequence whose KV arrived: rebuild its generation state by replaying the tokens it
   * generated elsewhere (their output was streamed there; sampling and stop checks are a function
   * of this history, so the next token is the one the old node would have produced).
   */
  private void rejoin(Slot s) {
    JoinRequest j = s.join;
    int[] gen = s.resumed;
    s.kv = PagedSequenceKv.adopt(pool, s.reservation.blocks(), s.reservation.promptTokens());
    s.state = new GenerationState(j.requestId(), j.promptIds(), j.params(), j.seed(), tokenizer);
    for (int t : gen) {
      if (s.state.accept(t, Double.NaN).finished()) {
        throw new IllegalStateException(
            "request "
                + j.requestId()
                + " was already finished after "
                + gen.length
                + " tokens; nothing to resume");
      }
    }
    s.lastToken = gen[gen.length - 1];
    running.add(s);
  }

  /**
   * Decode thread: migration failures come back to finish here; while migrating, every other
   * running sequence goes out.
   */
  private void exchangeForMigration() {
    Slot r;
    while ((r = returned.poll()) != null) {
      r.pinned = true;
      running.add(r);
    }
    if (!migrateAll) {
      return;
    }
    for (Iterator<Slot> it = running.iterator(); it.hasNext(); ) {
      Slot s = it.next();
      if (!s.pinned && !s.cancelled) {
        it.remove();
        handoff.add(s);
      }
    }
  }

  private void reapCancelled() {
    for (Iterator<Slot> it = running.iterator(); it.hasNext(); ) {
      Slot s = it.next();
      if (s.cancelled) {
        it.remove();
        Emission abort = s.state.abort();
        s.free();
        try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, s.join.requestId())) {
          finished(s, abort);
        }
        safeToken(s, abort);
      }
    }
  }

  private void step(Sampler sampler) {
    int n = Math.min(running.size(), options.maxBatch());
    List<Slot> batch = new ArrayList<>(n);
    int start = running.size() > n ? rotation++ % running.size() : 0;
    for (int i = 0; i < n; i++) {
      batch.add(running.get((start + i) % running.size()));
    }
    List<SequenceStep> seqs = new ArrayList<>(n);
    for (Slot s : batch) {
      seqs.add(SequenceStep.text(new int[] {s.lastToken}, s.kv, true));
    }
    long t0 = System.nanoTime();
    float[][] logits;
    // The step's lines, and the request id its expert dispatches carry, name its first sequence.
    try (CloseableThreadContext.Instance ctx =
        LogContext.request(nodeId, batch.get(0).join.requestId())) {
      try {
        logits = runner.forward(seqs, experts);
      } catch (RuntimeException e) {
        LOG.error("decode step of {} sequences failed", n, e);
        for (Slot s : batch) {
          running.remove(s);
          s.free();
          safeError(s, ServingException.unavailable("decode step failed: " + e.getMessage(), e));
        }
        return;
      }
    }
    for (int i = 0; i < n; i++) {
      Slot s = batch.get(i);
      try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, s.join.requestId())) {
        SampleResult r = s.state.sample(logits[i], sampler);
        Emission e = s.state.accept(r.tokenId(), r.logprob());
        s.lastToken = r.tokenId();
        tokens++;
        safeToken(s, e);
        if (e.finished()) {
          running.remove(s);
          s.free();
          finished(s, e);
        }
      }
    }
    long dt = System.nanoTime() - t0;
    steps++;
    batchSum += n;
    maxBatchSeen = Math.max(maxBatchSeen, n);
    lastStepMillis = dt / 1e6;
    metrics.step(n, dt);
  }

  /** A sequence ended here (called in its request's log context). */
  private void finished(Slot s, Emission last) {
    metrics.finished(last.finish().wireName());
    LOG.debug(
        "request {} finished ({}) after {} tokens",
        s.join.requestId(),
        last.finish().wireName(),
        s.state.generated());
  }

  private void safeToken(Slot s, Emission e) {
    emitter.execute(
        () -> {
          try {
            s.sink.onToken(e);
          } catch (RuntimeException ex) {
            LOG.warn("token sink of {} failed: {}", s.join.requestId(), ex.toString());
            s.cancelled = true;
          }
        });
  }

  private void safeError(Slot s, Throwable t) {
    if (s.sink == null) {
      return;
    }
    Runnable r =
        () -> {
          try {
            s.sink.onError(t);
          } catch (RuntimeException ex) {
            LOG.warn("token sink of {} failed: {}", s.reservation.requestId(), ex.toString());
          }
        };
    try {
      emitter.execute(r);
    } catch (java.util.concurrent.RejectedExecutionException e) {
      r.run(); // shutting down
    }
  }

  /**
   * Frees reservations whose lease ran out (a joined request is cancelled: it stops within a step
   * and its KV is freed) and those no request joined within their time to live.
   */
  private void sweep() {
    long ttl = options.reservationTtl().toNanos();
    long now = System.nanoTime();
    for (Slot s : slots.values()) {
      if (now - s.leaseDeadlineNanos > 0 && !s.cancelled) {
        leasesExpired.incrementAndGet();
        LOG.warn(
            "lease of reservation {} (request {}) ran out after {} without a renewal: its router or prefill node is gone; freeing its KV",
            s.transferId(),
            s.reservation.requestId(),
            options.lease());
        if (s.join == null) {
          s.free();
        } else {
          s.cancelled = true;
          transfers.cancel(s.transferId()); // a request still waiting for KV fails now
          signal();
        }
        continue;
      }
      if (s.join == null && now - s.reservedAtNanos > ttl) {
        LOG.warn(
            "freeing reservation {} of request {}: not joined within {}",
            s.transferId(),
            s.reservation.requestId(),
            options.reservationTtl());
        s.free();
      }
    }
  }

  @Override
  public void close() {
    closed = true;
    signal();
    try {
      loop.join(5000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    sweeper.shutdownNow();
    for (Slot s : slots.values()) {
      s.free();
      safeError(
          s,
          ServingException.unavailable(
              "node shutting down: decode node "
                  + nodeId
                  + " stopped before request "
                  + s.reservation.requestId()
                  + " finished (no other decode node took it in time); retry the request"));
    }
    emitter.shutdown();
    try {
      emitter.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
