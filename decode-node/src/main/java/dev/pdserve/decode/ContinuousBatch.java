package dev.pdserve.decode;

import dev.pdserve.core.engine.StepLoop;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.PagedSequenceKv;
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
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Continuous batching on the decode loop's {@link StepLoop}: each turn admits joined sequences
 * whose KV arrived (or that prefill here), ends cancelled ones, hands sequences to a drain's
 * migrator while it asks for them, and runs one forward step for every running sequence (at most
 * {@link DecodeOptions#maxBatch()}, taking turns beyond it), each token streamed through the {@link
 * TokenEmitter}. A sequence's reservation is freed when it ends.
 *
 * <p>Each sequence's decode steps take its prompt's 3-D rotary delta ({@link
 * JoinRequest#positionDelta()}; text: 0, plain positions). A local prefill with images has its
 * images encoded off the loop first ({@link LocalPrefillImages}) and computes its prompt with their
 * rows, vision flags and 3-D positions.
 */
final class ContinuousBatch implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(ContinuousBatch.class);

  /** How long an idle loop sleeps before it looks for work on its own (a wake ends it sooner). */
  private static final Duration IDLE_WAIT = Duration.ofMillis(50);

  private final ModelRunner runner;
  private final ExpertBackend experts;
  private final KvBlockPool pool;
  private final Tokenizer tokenizer;
  private final DecodeOptions options;
  private final DecodeMetrics metrics;
  private final ReservationTable reservations;
  private final TokenEmitter emitter;
  private final String nodeId = LogContext.nodeId();
  private final Sampler sampler;
  private final StepLoop loop;
  private final LocalPrefillImages images;

  private final ConcurrentLinkedQueue<DecodeSequence> admissions = new ConcurrentLinkedQueue<>();
  private final List<DecodeSequence> running = new ArrayList<>(); // decode thread only

  /**
   * Set while a drain migrates: every running sequence not pinned here goes to {@link #handedOff}.
   */
  private volatile boolean handingOff;

  private final BlockingQueue<DecodeSequence> handedOff = new LinkedBlockingQueue<>();

  /** Sequences whose migration failed: back into the batch, to finish here. */
  private final ConcurrentLinkedQueue<DecodeSequence> returned = new ConcurrentLinkedQueue<>();

  private final AtomicLong localPrefills = new AtomicLong();
  private final AtomicLong localPrefillTokens = new AtomicLong();
  private volatile int runningCount;
  private volatile long steps;
  private volatile long tokens;
  private volatile long batchSum;
  private volatile int maxBatchSeen;
  private volatile double lastStepMillis;
  private int rotation; // decode thread

  ContinuousBatch(
      DecodeResources resources,
      DecodeOptions options,
      DecodeMetrics metrics,
      ReservationTable reservations,
      TokenEmitter emitter) {
    this.runner = resources.runner();
    this.experts = resources.experts();
    this.pool = resources.pool();
    this.tokenizer = resources.tokenizer();
    this.options = options;
    this.metrics = metrics;
    this.reservations = reservations;
    this.emitter = emitter;
    this.sampler = new Sampler(tokenizer.eosId());
    this.loop = new StepLoop("decode-loop", nodeId, IDLE_WAIT, this::turn);
    this.images = new LocalPrefillImages(resources, metrics, nodeId);
  }

  /** Starts the decode loop (once). */
  void start() {
    loop.start();
  }

  /**
   * Completes with the cause when the decode loop died (a step threw an Error); its actions run on
   * the dead loop's thread, which touches no sequence any more.
   */
  CompletionStage<Throwable> loopDied() {
    return loop.died();
  }

  /** Tells the loop to look at its batch now (a cancel, a lease that ran out). */
  void wake() {
    loop.wake();
  }

  /**
   * Takes a joined sequence in: one that prefills here at once, one prefilled elsewhere when its KV
   * has fully arrived. If the KV fails to arrive (the transfer failed, was cancelled, or came too
   * late), the reservation is freed and the stream fails.
   */
  void admitJoined(DecodeSequence s) {
    JoinRequest req = s.join;
    if (req.localPrefill()) {
      reservations.cancelTransfer(s); // nothing is pushed: no stray push may write the blocks
      if (req.images().isEmpty()) {
        if (req.positionDelta() != 0) {
          refuse(
              s,
              ServingException.invalid(
                  "request "
                      + req.requestId()
                      + ": a text prompt has position_delta 0, got "
                      + req.positionDelta()));
          return;
        }
        admit(s);
      } else {
        images.encode(s, this::admit, this::refuse);
      }
      return;
    }
    s.positionDelta = req.positionDelta();
    try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, req.requestId())) {
      LOG.debug(
          "request {} joined (first token {}); {} of its KV layers here",
          req.requestId(),
          req.firstToken(),
          s.expectedKv.layersReceived());
    }
    s.expectedKv
        .completion()
        .whenComplete(
            (done, err) -> {
              if (err == null) {
                metrics.kvReceived(done.bytesReceived(), done.receiveNanos());
                s.kvArrived = true;
                admit(s);
              } else {
                failBeforeDecoding(s, err);
              }
            });
  }

  private void failBeforeDecoding(DecodeSequence s, Throwable err) {
    String requestId = s.join.requestId();
    Throwable cause =
        err instanceof CompletionException && err.getCause() != null ? err.getCause() : err;
    ServingException loopDead = reservations.loopDeadError(requestId);
    ServingException failure =
        loopDead != null
            ? loopDead // freeing it cancelled its transfer
            : s.kvLate
                ? ServingException.deadline(
                    "KV for request "
                        + requestId
                        + " did not arrive within "
                        + options.transferTimeout())
                : s.cancelled
                    ? ServingException.cancelled("request " + requestId + " was cancelled")
                    : ServingException.unavailable(
                        "KV transfer for request " + requestId + " failed: " + cause.getMessage(),
                        cause);
    reservations.free(s);
    try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, requestId)) {
      LOG.debug("request {} fails before decoding: {}", requestId, failure.toString());
    }
    emitter.error(s, failure);
  }

  private void admit(DecodeSequence s) {
    admissions.add(s);
    loop.wake();
  }

  /** Ends a joined sequence that cannot be prefilled here (its images): KV freed, stream failed. */
  private void refuse(DecodeSequence s, Throwable err) {
    reservations.free(s);
    try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, s.join.requestId())) {
      LOG.debug("request {} refused before decoding: {}", s.join.requestId(), err.toString());
    }
    emitter.error(s, err);
  }

  // ---- the drain's hand-off (see SequenceMigrator) ----

  /** From the next turn on, running sequences not pinned here are handed off. */
  void startHandOff() {
    handingOff = true;
    loop.wake();
  }

  /** Stops handing off; sequences handed off and not taken finish here. */
  void stopHandOff() {
    handingOff = false;
    loop.wake();
  }

  /** A sequence taken out of the batch for migration, if one is waiting. */
  DecodeSequence pollHandedOff() {
    return handedOff.poll();
  }

  /** Waits up to {@code wait} for a sequence taken out of the batch for migration. */
  DecodeSequence awaitHandedOff(Duration wait) throws InterruptedException {
    return handedOff.poll(wait.toNanos(), TimeUnit.NANOSECONDS);
  }

  /** A handed-off sequence that could not migrate: it goes back into the batch to finish here. */
  void giveBack(DecodeSequence s) {
    returned.add(s);
    loop.wake();
  }

  // ---- the decode loop ----

  private boolean turn() {
    admit();
    reapCancelled();
    exchangeForMigration();
    runningCount = running.size();
    if (running.isEmpty()) {
      return false;
    }
    step();
    return true;
  }

  /**
   * Takes requests whose KV arrived (or that prefill here) into the batch, emitting their first
   * token.
   */
  private void admit() {
    DecodeSequence s;
    while ((s = admissions.poll()) != null) {
      JoinRequest j = s.join;
      if (s.cancelled) {
        reservations.free(s);
        emitter.error(s, ServingException.cancelled("request " + j.requestId() + " was cancelled"));
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
            SequenceStep prompt =
                s.inputs == null
                    ? SequenceStep.text(j.promptIds(), s.kv, true)
                    : s.inputs.step(s.kv, true);
            float[] logits = runner.forward(List.of(prompt), experts)[0];
            if (prompt.visionTokens() > 0) {
              metrics.visionTokens(prompt.visionTokens());
            }
            s.inputs = null; // its image rows are in the KV now
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
          emitter.token(s, first);
          if (first.finished()) {
            reservations.free(s);
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
          reservations.free(s);
          LOG.warn("request {} could not join the batch: {}", j.requestId(), e.toString());
          emitter.error(s, e);
        }
      }
    }
  }

  /**
   * A migrated sequence whose KV arrived (or, with {@link JoinRequest#localPrefill()}, whose KV of
   * the prompt and every generated token but the last is computed here now): rebuild its generation
   * state by replaying the tokens it generated elsewhere (their output was streamed there; sampling
   * and stop checks are a function of this history, so the next token is the one the old node would
   * have produced).
   */
  private void rejoin(DecodeSequence s) {
    JoinRequest j = s.join;
    int[] gen = s.resumed;
    s.state = new GenerationState(j.requestId(), j.promptIds(), j.params(), j.seed(), tokenizer);
    for (int i = 0; i < gen.length; i++) {
      Emission e = s.state.accept(gen[i], Double.NaN);
      if (e.finished() && i == gen.length - 1) {
        // Its last token finished it (the old node's completion was lost with the node): end
        // it here, sending no token or text again.
        reservations.free(s);
        finished(s, e);
        emitter.token(s, new Emission(-1, "", Double.NaN, e.finish(), e.stopReason()));
        return;
      }
      if (e.finished()) {
        throw new IllegalStateException(
            "request "
                + j.requestId()
                + " was already finished after "
                + (i + 1)
                + " of the "
                + gen.length
                + " tokens it resumes with; nothing to resume");
      }
    }
    if (j.localPrefill()) {
      int[] context = Arrays.copyOf(j.promptIds(), s.reservation.promptTokens());
      System.arraycopy(gen, 0, context, j.promptIds().length, gen.length - 1);
      s.kv = PagedSequenceKv.withReservation(pool, s.reservation.blocks());
      runner.forward(List.of(SequenceStep.text(context, s.kv, false)), experts);
      localPrefills.incrementAndGet();
      localPrefillTokens.addAndGet(context.length);
    } else {
      s.kv = PagedSequenceKv.adopt(pool, s.reservation.blocks(), s.reservation.promptTokens());
    }
    s.lastToken = gen[gen.length - 1];
    running.add(s);
  }

  /**
   * Migration failures come back to finish here; while a drain migrates, every other running
   * sequence goes out.
   */
  private void exchangeForMigration() {
    DecodeSequence r;
    while ((r = returned.poll()) != null) {
      r.pinned = true;
      running.add(r);
    }
    if (!handingOff) {
      // handed off as the drain stopped, and not taken: they finish here
      while ((r = handedOff.poll()) != null) {
        r.pinned = true;
        running.add(r);
      }
      return;
    }
    for (Iterator<DecodeSequence> it = running.iterator(); it.hasNext(); ) {
      DecodeSequence s = it.next();
      if (!s.pinned && !s.cancelled) {
        it.remove();
        handedOff.add(s);
      }
    }
  }

  private void reapCancelled() {
    for (Iterator<DecodeSequence> it = running.iterator(); it.hasNext(); ) {
      DecodeSequence s = it.next();
      if (s.cancelled) {
        it.remove();
        Emission abort = s.state.abort();
        reservations.free(s);
        try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, s.join.requestId())) {
          finished(s, abort);
        }
        emitter.token(s, abort);
      }
    }
  }

  private void step() {
    int n = Math.min(running.size(), options.maxBatch());
    List<DecodeSequence> batch = new ArrayList<>(n);
    int start = running.size() > n ? rotation++ % running.size() : 0;
    for (int i = 0; i < n; i++) {
      batch.add(running.get((start + i) % running.size()));
    }
    List<SequenceStep> seqs = new ArrayList<>(n);
    for (DecodeSequence s : batch) {
      seqs.add(SequenceStep.decode(s.lastToken, s.kv, s.positionDelta));
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
        for (DecodeSequence s : batch) {
          running.remove(s);
          reservations.free(s);
          emitter.error(
              s, ServingException.unavailable("decode step failed: " + e.getMessage(), e));
        }
        return;
      }
    }
    for (int i = 0; i < n; i++) {
      DecodeSequence s = batch.get(i);
      try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, s.join.requestId())) {
        SampleResult r = s.state.sample(logits[i], sampler);
        Emission e = s.state.accept(r.tokenId(), r.logprob());
        s.lastToken = r.tokenId();
        tokens++;
        emitter.token(s, e);
        if (e.finished()) {
          running.remove(s);
          reservations.free(s);
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
  private void finished(DecodeSequence s, Emission last) {
    metrics.finished(last.finish().wireName());
    LOG.debug(
        "request {} finished ({}) after {} tokens",
        s.join.requestId(),
        last.finish().wireName(),
        s.state.generated());
  }

  // ---- what it measured ----

  int running() {
    return runningCount;
  }

  long steps() {
    return steps;
  }

  long tokens() {
    return tokens;
  }

  int maxBatchSeen() {
    return maxBatchSeen;
  }

  double meanBatch() {
    long st = steps;
    return st == 0 ? 0 : (double) batchSum / st;
  }

  double lastStepMillis() {
    return lastStepMillis;
  }

  long localPrefills() {
    return localPrefills.get();
  }

  long localPrefillTokens() {
    return localPrefillTokens.get();
  }

  /**
   * Fails local prefills still waiting for their images, then stops the decode loop (the running
   * step finishes first).
   */
  @Override
  public void close() {
    images.close();
    loop.close();
  }
}
