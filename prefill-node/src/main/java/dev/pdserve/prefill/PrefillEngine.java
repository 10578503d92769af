package dev.pdserve.prefill;

import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvPoolExhaustedException;
import dev.pdserve.core.kv.PagedSequenceKv;
import dev.pdserve.core.kv.PrefixCache;
import dev.pdserve.core.kv.PrefixHasher;
import dev.pdserve.core.kv.flight.KvTransferClient;
import dev.pdserve.core.kv.flight.OutgoingTransfer;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.engine.ExpertBackend;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.engine.SequenceStep;
import dev.pdserve.model.sampling.SampleResult;
import dev.pdserve.model.sampling.Sampler;
import dev.pdserve.model.sampling.TokenHistory;
import dev.pdserve.model.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.flight.Location;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The prefill role: computes prompts' KV — several short prompts batched in one step, long ones in
 * chunks — and pushes each layer to the decode node's Flight endpoint as soon as the layer is
 * computed (so the transfer overlaps the remaining layers' compute). When a prompt's last chunk is
 * done it samples the first token, waits for the decode node to acknowledge the whole KV, and
 * completes the job. Its own KV blocks are freed once the decode node acknowledged the KV (the
 * transfer may send them without copying until then).
 *
 * <p>With a {@link PrefixCache}, a prompt's full blocks stay in the pool after it is done, and a
 * later prompt that shares a prefix with it starts from those blocks: only the rest is computed,
 * while the whole prompt's KV still goes to the decode node (the cached blocks are pushed first).
 * At least the prompt's last token is always computed, for the first token's logits.
 *
 * <p>Measured through {@link PrefillMetrics}. Its threads log under the node id of the log context
 * it was built in; a step's lines (and its expert dispatches) carry the id of the step's first
 * request, a job's own lines its request id.
 */
public final class PrefillEngine implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(PrefillEngine.class);

  private final ModelRunner runner;
  private final ExpertBackend experts;
  private final KvBlockPool pool;
  private final KvTransferClient client;
  private final Tokenizer tokenizer;
  private final PrefillOptions options;
  private final PrefillMetrics metrics;
  private final String nodeId = LogContext.nodeId();
  private final PrefixCache cache; // null: no prefix caching
  private final PrefixHasher hasher;
  private final LinkedBlockingQueue<Job> incoming = new LinkedBlockingQueue<>();
  private final List<Job> active = new ArrayList<>(); // prefill thread only
  private final Thread loop;
  private final ExecutorService acks;
  private volatile boolean closed;

  /** False while the node drains (or serves the other role): new prompts are refused. */
  private volatile boolean accepting = true;

  private volatile long completed;
  private volatile long steps;
  private volatile double lastStepMillis;
  private final java.util.concurrent.atomic.AtomicLong queuedTokens =
      new java.util.concurrent.atomic.AtomicLong();

  /** Jobs holding KV (computing, or waiting for the decode node's acknowledgement). */
  private final java.util.concurrent.atomic.AtomicInteger startedJobs =
      new java.util.concurrent.atomic.AtomicInteger();

  private final java.util.concurrent.ConcurrentHashMap<String, Job> byRequest =
      new java.util.concurrent.ConcurrentHashMap<>();

  private final class Job {
    final PrefillJob spec;
    final long[] hashes; // of the prompt's full blocks, when caching
    final CompletableFuture<PrefillResult> future = new CompletableFuture<>();
    final long startNanos = System.nanoTime();
    volatile boolean cancelled;
    final java.util.concurrent.atomic.AtomicBoolean started =
        new java.util.concurrent.atomic.AtomicBoolean();
    int done; // prompt tokens computed
    PagedSequenceKv kv;
    PrefixCache.Match match; // cached prefix blocks this job pins
    int cachedTokens;
    int heldBlocks; // the prompt's leading blocks in the cache after commit
    OutgoingTransfer out;
    long computeNanos;

    Job(PrefillJob spec, long[] hashes) {
      this.spec = spec;
      this.hashes = hashes;
    }

    int remaining() {
      return spec.promptIds().length - done;
    }

    /** Frees the job's own blocks and unpins its cached prefix. */
    synchronized void cleanup() {
      if (kv != null) {
        kv.release();
        kv = null;
      }
      if (match != null) {
        cache.release(match);
        match = null;
      }
    }

    /**
     * After a successful transfer: full prompt blocks go to the prefix cache, the rest is freed.
     */
    synchronized void commit() {
      if (kv == null || cache == null) {
        cleanup();
        return;
      }
      heldBlocks =
          cache.commit(
              match == null ? PrefixCache.Match.NONE : match,
              hashes,
              spec.promptIds(),
              kv.detach());
      kv = null;
      match = null;
    }

    /** The job no longer holds KV or waits for an acknowledgement (idempotent). */
    void left() {
      if (started.compareAndSet(true, false)) {
        startedJobs.decrementAndGet();
      }
    }

    void fail(Throwable t) {
      if (out != null) {
        out.close(); // first: once it returns, no stream reads our blocks any more
      }
      cleanup();
      left();
      try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, spec.requestId())) {
        LOG.debug("prefill of request {} failed: {}", spec.requestId(), t.toString());
      }
      byRequest.remove(spec.requestId(), this);
      queuedTokens.addAndGet(-remaining());
      future.completeExceptionally(t);
    }
  }

  public PrefillEngine(
      ModelRunner runner,
      ExpertBackend experts,
      KvBlockPool pool,
      KvTransferClient client,
      Tokenizer tokenizer,
      PrefillOptions options) {
    this(
        runner,
        experts,
        pool,
        client,
        tokenizer,
        options,
        PrefillMetrics.NONE,
        (PrefixHasher) null);
  }

  public PrefillEngine(
      ModelRunner runner,
      ExpertBackend experts,
      KvBlockPool pool,
      KvTransferClient client,
      Tokenizer tokenizer,
      PrefillOptions options,
      PrefillMetrics metrics) {
    this(runner, experts, pool, client, tokenizer, options, metrics, (PrefixHasher) null);
  }

  public PrefillEngine(
      ModelRunner runner,
      ExpertBackend experts,
      KvBlockPool pool,
      KvTransferClient client,
      Tokenizer tokenizer,
      PrefillOptions options,
      PrefixHasher prefixHasher) {
    this(runner, experts, pool, client, tokenizer, options, PrefillMetrics.NONE, prefixHasher);
  }

  /**
   * An engine that keeps prompts' full KV blocks in a prefix cache (made over {@code pool}) and
   * reuses them for later prompts sharing a prefix; a null {@code prefixHasher} disables prefix
   * caching. The hasher's block size must be the pool's.
   */
  public PrefillEngine(
      ModelRunner runner,
      ExpertBackend experts,
      KvBlockPool pool,
      KvTransferClient client,
      Tokenizer tokenizer,
      PrefillOptions options,
      PrefillMetrics metrics,
      PrefixHasher prefixHasher) {
    if (prefixHasher != null && prefixHasher.blockSize() != pool.layout().blockSize()) {
      throw new IllegalArgumentException(
          "prefix hasher block size "
              + prefixHasher.blockSize()
              + " must equal the KV block size "
              + pool.layout().blockSize());
    }
    this.metrics = metrics;
    this.hasher = prefixHasher;
    this.cache = prefixHasher == null ? null : new PrefixCache(pool);
    this.runner = runner;
    this.experts = experts;
    this.pool = pool;
    this.client = client;
    this.tokenizer = tokenizer;
    this.options = options;
    this.acks =
        Executors.newFixedThreadPool(2, new NamedThreadFactory("prefill-ack", true, nodeId));
    this.loop = NamedThreadFactory.thread("prefill-loop", true, nodeId, this::loop);
    this.loop.start();
  }

  /**
   * Queues a prompt; the future completes with its first token, or fails with a ServingException.
   */
  public CompletableFuture<PrefillResult> submit(PrefillJob spec) {
    if (closed) {
      return CompletableFuture.failedFuture(
          ServingException.unavailable("prefill node is shutting down"));
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
    Job job = new Job(spec, hasher == null ? null : hasher.hashes(spec.promptIds()));
    if (byRequest.putIfAbsent(spec.requestId(), job) != null) {
      return CompletableFuture.failedFuture(
          new ServingException(
              ServingException.Kind.ALREADY_EXISTS,
              "request " + spec.requestId() + " is already being prefilled here"));
    }
    queuedTokens.addAndGet(spec.promptIds().length);
    incoming.add(job);
    try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, spec.requestId())) {
      LOG.debug(
          "prefill of request {} queued: {} prompt tokens, KV to {}:{}",
          spec.requestId(),
          spec.promptIds().length,
          spec.flightHost(),
          spec.flightPort());
    }
    return job.future;
  }

  /** Cancels a queued or running prompt: it stops at the next chunk boundary and frees its KV. */
  public boolean cancel(String requestId) {
    Job j = byRequest.get(requestId);
    if (j == null) {
      return false;
    }
    j.cancelled = true;
    return true;
  }

  /** The prefix cache, or null when prefix caching is off. */
  public PrefixCache prefixCache() {
    return cache;
  }

  /**
   * Prompt tokens looked up in the prefix cache so far ({@code prefix_cache_queries}); 0 when off.
   */
  public long prefixCacheQueries() {
    return cache == null ? 0 : cache.queriedTokens();
  }

  /** Prompt tokens served from the prefix cache so far ({@code prefix_cache_hits}); 0 when off. */
  public long prefixCacheHits() {
    return cache == null ? 0 : cache.hitTokens();
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
   * prefilled and handed over (or failed), or until {@code timeout} passes.
   */
  public dev.pdserve.core.coordination.DrainReport drain(java.time.Duration timeout) {
    accepting = false;
    long deadline = System.nanoTime() + timeout.toNanos();
    int held = byRequest.size();
    while (!byRequest.isEmpty()) {
      if (System.nanoTime() > deadline) {
        return new dev.pdserve.core.coordination.DrainReport(
            false,
            0,
            held - byRequest.size(),
            byRequest.size() + " prompt(s) still being prefilled");
      }
      try {
        Thread.sleep(5);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return new dev.pdserve.core.coordination.DrainReport(
            false, 0, held - byRequest.size(), "interrupted");
      }
    }
    return new dev.pdserve.core.coordination.DrainReport(true, 0, held, "");
  }

  public PrefillStats stats() {
    return new PrefillStats(
        byRequest.size(),
        queuedTokens.get(),
        completed,
        steps,
        pool.freeBlocks(),
        pool.totalBlocks(),
        lastStepMillis);
  }

  /** Jobs holding KV: computing, or waiting for the decode node to take their KV. */
  public int runningJobs() {
    return Math.min(byRequest.size(), startedJobs.get());
  }

  /** Jobs queued that have not started (no KV yet). */
  public int waitingJobs() {
    return Math.max(0, byRequest.size() - startedJobs.get());
  }

  private void loop() {
    Sampler sampler = new Sampler(tokenizer.eosId());
    while (!closed) {
      try {
        if (active.isEmpty()) {
          Job j = incoming.poll(100, TimeUnit.MILLISECONDS);
          if (j != null) {
            active.add(j);
          }
        }
        incoming.drainTo(active);
        if (active.isEmpty()) {
          continue;
        }
        step(sampler);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      } catch (RuntimeException e) {
        LOG.error("prefill loop error", e);
      }
    }
  }

  private void step(Sampler sampler) {
    // Drop cancelled jobs; choose this step's chunks.
    List<Job> batch = new ArrayList<>();
    List<int[]> chunks = new ArrayList<>();
    int budget = options.maxBatchTokens();
    for (Iterator<Job> it = active.iterator(); it.hasNext(); ) {
      Job j = it.next();
      if (j.cancelled) {
        it.remove();
        j.fail(ServingException.cancelled("request " + j.spec.requestId() + " was cancelled"));
        continue;
      }
      int n = Math.min(j.remaining(), options.chunkTokens());
      if (n > budget && !batch.isEmpty()) {
        continue;
      }
      if (j.kv == null && !start(j)) {
        continue; // waits for KV blocks
      }
      if (j.kv == null) {
        it.remove(); // failed to start
        continue;
      }
      n = Math.min(j.remaining(), options.chunkTokens()); // a cached prefix is not computed
      batch.add(j);
      chunks.add(Arrays.copyOfRange(j.spec.promptIds(), j.done, j.done + n));
      budget -= n;
      if (budget <= 0) {
        break;
      }
    }
    if (batch.isEmpty()) {
      return;
    }
    List<SequenceStep> seqs = new ArrayList<>(batch.size());
    for (int i = 0; i < batch.size(); i++) {
      Job j = batch.get(i);
      boolean last = j.done + chunks.get(i).length == j.spec.promptIds().length;
      seqs.add(SequenceStep.text(chunks.get(i), j.kv, last));
    }
    long t0 = System.nanoTime();
    float[][] logits;
    int stepTokens = 0;
    for (int[] c : chunks) {
      stepTokens += c.length;
    }
    // The step's lines, and the request id its expert dispatches carry, name its first request.
    try (CloseableThreadContext.Instance ctx =
        LogContext.request(nodeId, batch.get(0).spec.requestId())) {
      try {
        logits = runner.forward(seqs, experts);
      } catch (RuntimeException e) {
        LOG.warn("prefill step of {} prompts failed: {}", batch.size(), e.toString());
        for (Job j : batch) {
          active.remove(j);
          j.fail(
              e instanceof ServingException
                  ? e
                  : ServingException.unavailable("prefill failed: " + e.getMessage(), e));
        }
        return;
      }
    }
    long dt = System.nanoTime() - t0;
    steps++;
    lastStepMillis = dt / 1e6;
    metrics.step(batch.size(), stepTokens, dt);
    for (int i = 0; i < batch.size(); i++) {
      Job j = batch.get(i);
      int n = chunks.get(i).length;
      j.done += n;
      j.computeNanos += dt;
      queuedTokens.addAndGet(-n);
      if (logits[i] != null) {
        active.remove(j);
        finish(j, logits[i], sampler);
      }
    }
  }

  /**
   * Pins the prompt's cached prefix, allocates the rest of its KV and opens its transfer (pushing
   * the cached prefix first); false if it must wait for blocks.
   */
  private boolean start(Job j) {
    int[] prompt = j.spec.promptIds();
    int bs = pool.layout().blockSize();
    PrefixCache.Match m =
        cache == null
            ? PrefixCache.Match.NONE
            : cache.acquire(j.hashes, prompt, (prompt.length - 1) / bs);
    try {
      int[] blocks = pool.allocate(pool.layout().blocksFor(prompt.length) - m.length());
      synchronized (j) {
        j.kv =
            m.length() == 0
                ? PagedSequenceKv.withReservation(pool, blocks)
                : PagedSequenceKv.withSharedPrefix(pool, m.blocks(), blocks);
        j.match = m.length() == 0 ? null : m;
      }
    } catch (KvPoolExhaustedException e) {
      if (cache != null) {
        cache.release(m);
      }
      return false;
    }
    if (cache != null) {
      cache.record(prompt.length, m.tokens());
      metrics.prefixCacheQueried(prompt.length, m.tokens());
      if (m.tokens() > 0) {
        try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, j.spec.requestId())) {
          LOG.debug(
              "request {}: {} of {} prompt tokens from the prefix cache",
              j.spec.requestId(),
              m.tokens(),
              prompt.length);
        }
      }
    }
    j.cachedTokens = m.tokens();
    j.done = m.tokens();
    queuedTokens.addAndGet(-m.tokens());
    if (j.started.compareAndSet(false, true)) {
      startedJobs.incrementAndGet();
    }
    try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, j.spec.requestId())) {
      LOG.debug(
          "prefill of request {} started after {} ms queued",
          j.spec.requestId(),
          (System.nanoTime() - j.startNanos) / 1_000_000);
    }
    try {
      j.out =
          client.open(
              Location.forGrpcInsecure(j.spec.flightHost(), j.spec.flightPort()),
              j.spec.transferId());
      OutgoingTransfer out = j.out;
      PagedSequenceKv kv = j.kv;
      for (int layer = 0; m.tokens() > 0 && layer < pool.layout().layers(); layer++) {
        out.sendLayer(layer, kv, 0, m.tokens()); // the decode node needs the whole prompt's KV
      }
      kv.setLayerWrittenListener(
          (layer, first, count) -> out.sendLayer(layer, kv, first, first + count));
      return true;
    } catch (RuntimeException e) {
      j.fail(
          ServingException.unavailable(
              "cannot open a KV transfer to decode node "
                  + j.spec.flightHost()
                  + ":"
                  + j.spec.flightPort()
                  + ": "
                  + e.getMessage(),
              e));
      return true;
    }
  }

  private void finish(Job j, float[] logits, Sampler sampler) {
    SampleResult first;
    try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, j.spec.requestId())) {
      first =
          sampler.sample(
              logits, j.spec.params(), new TokenHistory(j.spec.promptIds()), j.spec.seed());
    }
    OutgoingTransfer out = j.out;
    long computeMicros = j.computeNanos / 1000;
    acks.execute(
        () -> {
          try (CloseableThreadContext.Instance ctx =
              LogContext.request(nodeId, j.spec.requestId())) {
            long t0 = System.nanoTime();
            try {
              out.complete();
              long acked = System.nanoTime();
              long kvBytes = out.bytesSent();
              long firstSent = out.firstSendNanos();
              out.close();
              j.commit(); // the decode node holds every layer: our blocks are no longer read
              j.left();
              byRequest.remove(j.spec.requestId(), j);
              completed++;
              metrics.kvSent(kvBytes, firstSent == 0 ? 0 : acked - firstSent);
              LOG.debug(
                  "prefill of request {} done: first token {}, {} KV bytes acknowledged by the decode node, {} ms computing",
                  j.spec.requestId(),
                  first.tokenId(),
                  kvBytes,
                  computeMicros / 1000);
              j.future.complete(
                  new PrefillResult(
                      first.tokenId(),
                      first.logprob(),
                      j.cachedTokens,
                      kvBytes,
                      computeMicros,
                      (acked - t0) / 1000,
                      j.heldBlocks));
            } catch (RuntimeException e) {
              out.close();
              j.cleanup();
              j.left();
              byRequest.remove(j.spec.requestId(), j);
              LOG.debug(
                  "KV of request {} not taken by the decode node: {}",
                  j.spec.requestId(),
                  e.toString());
              j.future.completeExceptionally(
                  j.cancelled
                      ? ServingException.cancelled(
                          "request " + j.spec.requestId() + " was cancelled")
                      : ServingException.unavailable(
                          "decode node did not take the KV of "
                              + j.spec.requestId()
                              + ": "
                              + e.getMessage(),
                          e));
            }
          }
        });
  }

  @Override
  public void close() {
    closed = true;
    loop.interrupt();
    try {
      loop.join(5000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    for (Job j : active) {
      j.fail(ServingException.unavailable("prefill node is shutting down"));
    }
    Job j;
    while ((j = incoming.poll()) != null) {
      j.fail(ServingException.unavailable("prefill node is shutting down"));
    }
    acks.shutdown();
    try {
      acks.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
