package dev.pdserve.prefill;

import com.google.common.base.Ticker;
import dev.pdserve.core.coordination.DrainReport;
import dev.pdserve.core.engine.ImageEncodingStage;
import dev.pdserve.core.engine.StepLoop;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.PrefixCache;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.engine.ExpertBackend;
import dev.pdserve.model.engine.ImagePromptEncoder;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.engine.PrefillInputs;
import dev.pdserve.model.engine.PromptImages;
import dev.pdserve.model.engine.SequenceStep;
import dev.pdserve.model.sampling.SampleResult;
import dev.pdserve.model.sampling.Sampler;
import dev.pdserve.model.sampling.TokenHistory;
import dev.pdserve.prefill.PrefillChunkScheduler.Admission;
import dev.pdserve.prefill.PrefillChunkScheduler.Chunk;
import dev.pdserve.prefill.PrefillChunkScheduler.Plan;
import dev.pdserve.prefill.PrefillChunkScheduler.StartOutcome;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The prefill role: computes prompts' KV — several short prompts batched in one step, long ones in
 * chunks ({@link PrefillChunkScheduler}) — and pushes each layer to the decode node as soon as the
 * layer is computed (so the transfer overlaps the remaining layers' compute; {@link PrefillKv}).
 * When a prompt's last chunk is done it samples the first token, waits for the decode node to
 * acknowledge the whole KV, and completes the job ({@link KvHandoff}). Its own KV blocks are freed
 * once the decode node acknowledged the KV (the transfer may send them without copying until then).
 *
 * <p>With a prefix cache, a prompt's full blocks stay in the pool after it is done, and a later
 * prompt that shares a prefix with it starts from those blocks: only the rest is computed, while
 * the whole prompt's KV still goes to the decode node (the cached blocks are pushed first). At
 * least the prompt's last token is always computed, for the first token's logits.
 *
 * <p>A prompt with images (a model with a vision encoder) has them checked against its token ids
 * when it is submitted, then decoded, preprocessed and encoded — or taken from the encoder cache by
 * digest — on the engine's {@code prefill-vision} thread ({@link ImageEncodingStage}), and only
 * then queued for compute: its chunks carry the image rows, vision flags and 3-D positions ({@link
 * PrefillInputs#chunk}), and its block hashes mix in its images' digests.
 *
 * <p>Steps run on one owned thread ({@code prefill-loop}, a {@link StepLoop}) that {@link #submit}
 * wakes. If that loop dies (a step threw an Error, such as an OutOfMemoryError for direct memory),
 * every prompt it held or queued fails with UNAVAILABLE saying so and that retrying elsewhere is
 * safe, their KV is freed, new prompts are refused the same way, and {@link #loopDied()} tells the
 * node (which stops advertising itself). Measured through {@link PrefillMetrics}. Its threads log
 * under the node id of the log context it was built in; a step's lines (and its expert dispatches)
 * carry the id of the step's first request, a job's own lines its request id.
 */
public final class PrefillEngine implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(PrefillEngine.class);

  /**
   * The longest the idle loop sleeps before it looks at its queue again: prompts waiting for KV
   * blocks retry at least this often (blocks the decode role frees into a shared pool are not
   * announced; those the hand-off frees wake the loop at once).
   */
  private static final Duration IDLE_WAIT = Duration.ofMillis(10);

  private final ModelRunner runner;
  private final ExpertBackend experts;
  private final KvBlockPool pool;
  private final Ticker ticker;
  private final PrefillMetrics metrics;
  private final String nodeId = LogContext.nodeId();
  private final PrefillKv kv;
  private final HeldJobs jobs;
  private final PrefillChunkScheduler scheduler;
  private final Admission<PrefillJobState> admission =
      new Admission<>() {
        @Override
        public StartOutcome start(PrefillJobState job) {
          return PrefillEngine.this.start(job);
        }

        @Override
        public void cancelled(PrefillJobState job) {
          fail(job, ServingException.cancelled("request " + job.requestId() + " was cancelled"));
        }
      };
  private final Sampler sampler; // the loop's
  private final LinkedBlockingQueue<PrefillJobState> incoming = new LinkedBlockingQueue<>();
  private final List<PrefillJobState> active = new ArrayList<>(); // the loop's
  private final KvHandoff handoff;
  private final StepLoop loop;
  private final ImageEncodingStage images; // null: the model takes no images
  private volatile boolean closed;

  /** Why the loop died (what new and held prompts fail with), or null while it runs. */
  private volatile String loopDeath;

  private final CompletableFuture<String> loopDied = new CompletableFuture<>();

  /** False while the node drains (or serves the other role): new prompts are refused. */
  private volatile boolean accepting = true;

  private final AtomicLong steps = new AtomicLong();
  private volatile double lastStepMillis;

  /** An engine over {@code settings}, its loop started. */
  public PrefillEngine(PrefillEngineSettings settings) {
    this.runner = settings.runner();
    this.experts = settings.experts();
    this.pool = settings.pool();
    this.ticker = settings.ticker();
    this.metrics = settings.metrics();
    this.kv = new PrefillKv(pool, settings.prefixHasher(), settings.pusher(), metrics, nodeId);
    this.jobs = new HeldJobs(ticker);
    this.scheduler = new PrefillChunkScheduler(settings.options());
    this.sampler = new Sampler(settings.tokenizer().eosId());
    this.loop = new StepLoop("prefill-loop", nodeId, IDLE_WAIT, this::turn);
    this.handoff = new KvHandoff(kv, jobs, metrics, nodeId, loop::wake);
    this.images =
        settings.visionEncoder() == null
            ? null
            : new ImageEncodingStage(
                "prefill-vision",
                nodeId,
                new ImagePromptEncoder(
                    runner, settings.visionEncoder(), settings.encoderCache(), metrics));
    loop.died().thenAccept(this::loopDied);
    loop.start();
  }

  /**
   * Queues a prompt; the future completes with its first token, or fails with a ServingException.
   */
  public CompletableFuture<PrefillResult> submit(PrefillJob spec) {
    if (closed) {
      return CompletableFuture.failedFuture(
          ServingException.unavailable("prefill node is shutting down"));
    }
    if (loopDeath != null) {
      return CompletableFuture.failedFuture(loopDeadError(spec.requestId()));
    }
    if (!accepting) {
      return CompletableFuture.failedFuture(
          ServingException.unavailable(
              "this node is not taking prefill work (draining or serving the decode role); choose another prefill node"));
    }
    int needed = pool.layout().blocksFor(spec.promptIds().length);
    if (needed > pool.totalBlocks()) {
      return CompletableFuture.failedFuture(
          ServingException.exhausted(
              "prompt of "
                  + spec.promptIds().length
                  + " tokens needs "
                  + needed
                  + " KV blocks; this prefill node's pool holds "
                  + pool.totalBlocks()));
    }
    PromptImages checked;
    try {
      checked = checkImages(spec);
    } catch (ServingException e) {
      return CompletableFuture.failedFuture(e);
    }
    PrefillJobState job =
        new PrefillJobState(
            spec,
            kv.blockKeys(spec.promptIds(), checked == null ? List.of() : checked.images()),
            checked,
            ticker.read());
    if (!jobs.add(job)) {
      return CompletableFuture.failedFuture(
          new ServingException(
              ServingException.Kind.ALREADY_EXISTS,
              "request " + spec.requestId() + " is already being prefilled here"));
    }
    try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, spec.requestId())) {
      LOG.debug(
          "prefill of request {} queued: {} prompt tokens, {} images, KV to {}:{}",
          spec.requestId(),
          spec.promptIds().length,
          spec.images().size(),
          spec.flightHost(),
          spec.flightPort());
    }
    if (checked == null) {
      enqueue(job);
    } else {
      images
          .encode(spec.requestId(), checked)
          .whenComplete(
              (inputs, err) -> {
                if (err != null) {
                  fail(job, err);
                } else {
                  job.setInputs(inputs);
                  enqueue(job);
                }
              });
    }
    return job.result();
  }

  /**
   * The prompt's images checked against its token ids; null for a text prompt.
   *
   * @throws ServingException INVALID_ARGUMENT naming what does not fit
   */
  private PromptImages checkImages(PrefillJob spec) {
    if (spec.images().isEmpty()) {
      return null;
    }
    if (images == null) {
      throw ServingException.invalid(
          "request "
              + spec.requestId()
              + " has "
              + spec.images().size()
              + " images, but model "
              + runner.config().name()
              + " takes none here (this node runs without a vision encoder: the model has none,"
              + " or pdserve.vision.enabled is false); send text only");
    }
    return images.check(spec.requestId(), spec.promptIds(), spec.images());
  }

  /** Queues a prompt ready to compute (its images, if any, encoded) and wakes the loop. */
  private void enqueue(PrefillJobState job) {
    incoming.add(job);
    // closed, or the loop died, while queueing: close() or loopDied() may have missed it
    if (closed && incoming.remove(job)) {
      fail(job, ServingException.unavailable("prefill node is shutting down"));
    } else if (loopDeath != null && incoming.remove(job)) {
      fail(job, loopDeadError(job.requestId()));
    }
    loop.wake();
  }

  /** Cancels a queued or running prompt: it stops at the next chunk boundary and frees its KV. */
  public boolean cancel(String requestId) {
    PrefillJobState job = jobs.get(requestId);
    if (job == null) {
      return false;
    }
    job.cancel();
    loop.wake();
    return true;
  }

  /** The prefix cache, or null when prefix caching is off. */
  public PrefixCache prefixCache() {
    return kv.cache();
  }

  /**
   * Prompt tokens looked up in the prefix cache so far ({@code prefix_cache_queries}); 0 when off.
   */
  public long prefixCacheQueries() {
    return kv.cache() == null ? 0 : kv.cache().queriedTokens();
  }

  /** Prompt tokens served from the prefix cache so far ({@code prefix_cache_hits}); 0 when off. */
  public long prefixCacheHits() {
    return kv.cache() == null ? 0 : kv.cache().hitTokens();
  }

  /** Lets this engine take new prompts (true) or refuse them with UNAVAILABLE (false). */
  public void setAccepting(boolean accepting) {
    this.accepting = accepting;
  }

  public boolean accepting() {
    return accepting;
  }

  /**
   * Drains for a role switch: takes no new prompts and waits until every prompt it holds is
   * prefilled and handed over (or failed), or until {@code timeout} passes on the engine's ticker.
   */
  public DrainReport drain(Duration timeout) {
    accepting = false;
    return jobs.awaitEmpty(timeout);
  }

  public PrefillStats stats() {
    return new PrefillStats(
        jobs.size(),
        jobs.queuedTokens(),
        jobs.completed(),
        steps.get(),
        pool.freeBlocks(),
        pool.totalBlocks(),
        lastStepMillis);
  }

  /** Jobs holding KV: computing, or waiting for the decode node to take their KV. */
  public int runningJobs() {
    return jobs.holdingKv();
  }

  /** Jobs queued that have not started (no KV yet). */
  public int waitingJobs() {
    return jobs.waitingToStart();
  }

  /** One turn of the loop: takes new prompts in, plans a step and computes it. */
  private boolean turn() {
    incoming.drainTo(active);
    if (active.isEmpty()) {
      return false;
    }
    Plan<PrefillJobState> plan = scheduler.plan(active, admission);
    active.removeAll(plan.leaving());
    if (plan.isEmpty()) {
      return !plan.leaving().isEmpty(); // all wait for blocks: sleep until some are freed
    }
    compute(plan);
    return true;
  }

  /**
   * Pins the prompt's cached prefix, allocates the rest of its KV and opens its transfer (pushing
   * the cached prefix first).
   */
  private StartOutcome start(PrefillJobState job) {
    if (!kv.allocate(job)) {
      return StartOutcome.WAITING_FOR_BLOCKS;
    }
    jobs.started(job);
    PrefillJob spec = job.spec();
    try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, spec.requestId())) {
      LOG.debug(
          "prefill of request {} started after {} ms queued",
          spec.requestId(),
          (ticker.read() - job.queuedAtNanos()) / 1_000_000);
    }
    try {
      kv.openPush(job);
      return StartOutcome.STARTED;
    } catch (RuntimeException e) {
      fail(
          job,
          ServingException.unavailable(
              "cannot open a KV transfer to decode node "
                  + spec.flightHost()
                  + ":"
                  + spec.flightPort()
                  + ": "
                  + e.getMessage(),
              e));
      return StartOutcome.FAILED;
    }
  }

  /** Runs one forward step over the plan's chunks; prompts it completes go to the hand-off. */
  private void compute(Plan<PrefillJobState> plan) {
    List<Chunk<PrefillJobState>> chunks = plan.chunks();
    List<SequenceStep> seqs = new ArrayList<>(chunks.size());
    int visionTokens = 0;
    for (Chunk<PrefillJobState> c : chunks) {
      PrefillJobState job = c.prompt();
      SequenceStep step = job.nextChunk(c.tokens(), job.kv());
      seqs.add(step);
      visionTokens += step.visionTokens();
    }
    long t0 = System.nanoTime();
    float[][] logits;
    // The step's lines, and the request id its expert dispatches carry, name its first request.
    try (CloseableThreadContext.Instance ctx =
        LogContext.request(nodeId, chunks.get(0).prompt().requestId())) {
      try {
        logits = runner.forward(seqs, experts);
      } catch (RuntimeException e) {
        LOG.warn("prefill step of {} prompts failed: {}", chunks.size(), e.toString());
        for (Chunk<PrefillJobState> c : chunks) {
          active.remove(c.prompt());
          fail(
              c.prompt(),
              e instanceof ServingException
                  ? e
                  : ServingException.unavailable("prefill failed: " + e.getMessage(), e));
        }
        return;
      }
    }
    long dt = System.nanoTime() - t0;
    steps.incrementAndGet();
    lastStepMillis = dt / 1e6;
    metrics.step(chunks.size(), plan.tokens(), dt);
    if (visionTokens > 0) {
      metrics.visionTokens(visionTokens);
    }
    for (int i = 0; i < chunks.size(); i++) {
      PrefillJobState job = chunks.get(i).prompt();
      job.chunkComputed(chunks.get(i).tokens(), dt);
      jobs.computed(chunks.get(i).tokens());
      if (logits[i] != null) {
        active.remove(job);
        handoff.handOff(job, sampleFirstToken(job, logits[i]));
      }
    }
  }

  private SampleResult sampleFirstToken(PrefillJobState job, float[] logits) {
    PrefillJob spec = job.spec();
    try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, spec.requestId())) {
      return sampler.sample(logits, spec.params(), new TokenHistory(spec.promptIds()), spec.seed());
    }
  }

  /** Ends a prompt that will not hand its KV over: frees what it holds, fails its future. */
  private void fail(PrefillJobState job, Throwable t) {
    kv.release(job); // its push first: once that returns, no stream reads our blocks any more
    jobs.leave(job);
    try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, job.requestId())) {
      LOG.debug("prefill of request {} failed: {}", job.requestId(), t.toString());
    }
    job.result().completeExceptionally(t);
  }

  /**
   * The loop died (on its thread, which runs nothing else now): ends every prompt it held or queued
   * with UNAVAILABLE, freeing their KV; prompts handing their KV over finish on their own.
   */
  private void loopDied(Throwable cause) {
    String why =
        (nodeId == null ? "this prefill node" : "prefill node " + nodeId)
            + "'s step loop died ("
            + cause.getClass().getSimpleName()
            + (cause.getMessage() == null ? "" : ": " + cause.getMessage())
            + ")";
    loopDeath = why;
    accepting = false;
    int ended = active.size();
    for (PrefillJobState job : active) {
      fail(job, loopDeadError(job.requestId()));
    }
    active.clear();
    PrefillJobState job;
    while ((job = incoming.poll()) != null) {
      fail(job, loopDeadError(job.requestId()));
      ended++;
    }
    LOG.warn("{}: {} prompts it held failed, their KV freed; new prompts are refused", why, ended);
    loopDied.complete(why);
  }

  /** What a prompt fails with once the loop died. */
  private ServingException loopDeadError(String requestId) {
    return ServingException.unavailable(
        loopDeath
            + "; nothing of request "
            + requestId
            + " runs here any more, so retrying it (on another prefill node) is safe;"
            + " this node must be restarted");
  }

  /**
   * Completes, with what happened, when the engine's step loop died and the engine stopped (every
   * prompt it held failed, new ones refused); never completes while the loop runs. Its actions run
   * on the dead loop's thread.
   */
  public CompletionStage<String> loopDied() {
    return loopDied.minimalCompletionStage();
  }

  @Override
  public void close() {
    closed = true;
    if (images != null) {
      images.close(); // prompts still waiting for their images fail through their futures
    }
    loop.close();
    for (PrefillJobState job : active) {
      fail(job, ServingException.unavailable("prefill node is shutting down"));
    }
    active.clear();
    PrefillJobState job;
    while ((job = incoming.poll()) != null) {
      fail(job, ServingException.unavailable("prefill node is shutting down"));
    }
    handoff.close();
  }
}
