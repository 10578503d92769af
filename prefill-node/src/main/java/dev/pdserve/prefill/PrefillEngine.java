package dev.pdserve.prefill;

import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvPoolExhaustedException;
import dev.pdserve.core.kv.PagedSequenceKv;
import dev.pdserve.core.kv.flight.KvTransferClient;
import dev.pdserve.core.kv.flight.OutgoingTransfer;
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
 * completes the job. Its own KV blocks are freed as soon as the last layer is sent.
 */
public final class PrefillEngine implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(PrefillEngine.class);

  private final ModelRunner runner;
  private final ExpertBackend experts;
  private final KvBlockPool pool;
  private final KvTransferClient client;
  private final Tokenizer tokenizer;
  private final PrefillOptions options;
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
  private final java.util.concurrent.atomic.AtomicLong queuedTokens = new java.util.concurrent.atomic.AtomicLong();
  private final java.util.concurrent.ConcurrentHashMap<String, Job> byRequest = new java.util.concurrent.ConcurrentHashMap<>();

  private final class Job {
    final PrefillJob spec;
    final CompletableFuture<PrefillResult> future = new CompletableFuture<>();
    final long startNanos = System.nanoTime();
    volatile boolean cancelled;
    int done; // prompt tokens computed
    PagedSequenceKv kv;
    OutgoingTransfer out;
    long computeNanos;

    Job(PrefillJob spec) {
      this.spec = spec;
    }

    int remaining() {
      return spec.promptIds().length - done;
    }

    void cleanup() {
      if (kv != null) {
        kv.release();
        kv = null;
      }
    }

    void fail(Throwable t) {
      cleanup();
      if (out != null) {
        out.close();
      }
      byRequest.remove(spec.requestId(), this);
      queuedTokens.addAndGet(-remaining());
      future.completeExceptionally(t);
    }
  }

  public PrefillEngine(ModelRunner runner, ExpertBackend experts, KvBlockPool pool, KvTransferClient client, Tokenizer tokenizer, PrefillOptions options) {
    this.runner = runner;
    this.experts = experts;
    this.pool = pool;
    this.client = client;
    this.tokenizer = tokenizer;
    this.options = options;
    this.acks =
        Executors.newFixedThreadPool(
            2,
            r -> {
              Thread t = new Thread(r, "prefill-ack");
              t.setDaemon(true);
              return t;
            });
    this.loop = new Thread(this::loop, "prefill-loop");
    this.loop.setDaemon(true);
    this.loop.start();
  }

  /** Queues a prompt; the future completes with its first token, or fails with a ServingException. */
  public CompletableFuture<PrefillResult> submit(PrefillJob spec) {
    if (closed) {
      return CompletableFuture.failedFuture(ServingException.unavailable("prefill node is shutting down"));
    }
    if (!accepting) {
      return CompletableFuture.failedFuture(
          ServingException.unavailable("this node is not taking prefill work (draining or serving the decode role); choose another prefill node"));
    }
    int needed = pool.layout().blocksFor(spec.promptIds().length);
    if (needed > pool.totalBlocks()) {
      return CompletableFuture.failedFuture(
          ServingException.exhausted(
              "prompt of " + spec.promptIds().length + " tokens needs " + needed + " KV blocks; this prefill node's pool holds " + pool.totalBlocks()));
    }
    Job job = new Job(spec);
    if (byRequest.putIfAbsent(spec.requestId(), job) != null) {
      return CompletableFuture.failedFuture(
          new ServingException(ServingException.Kind.ALREADY_EXISTS, "request " + spec.requestId() + " is already being prefilled here"));
    }
    queuedTokens.addAndGet(spec.promptIds().length);
    incoming.add(job);
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
        return new dev.pdserve.core.coordination.DrainReport(false, 0, held - byRequest.size(), byRequest.size() + " prompt(s) still being prefilled");
      }
      try {
        Thread.sleep(5);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return new dev.pdserve.core.coordination.DrainReport(false, 0, held - byRequest.size(), "interrupted");
      }
    }
    return new dev.pdserve.core.coordination.DrainReport(true, 0, held, "");
  }

  public PrefillStats stats() {
    return new PrefillStats(byRequest.size(), queuedTokens.get(), completed, steps, pool.freeBlocks(), pool.totalBlocks(), lastStepMillis);
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
    try {
      logits = runner.forward(seqs, experts);
    } catch (RuntimeException e) {
      LOG.warn("prefill step of {} prompts failed: {}", batch.size(), e.toString());
      for (Job j : batch) {
        active.remove(j);
        j.fail(e instanceof ServingException ? e : ServingException.unavailable("prefill failed: " + e.getMessage(), e));
      }
      return;
    }
    long dt = System.nanoTime() - t0;
    steps++;
    lastStepMillis = dt / 1e6;
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

  /** Allocates the job's KV and opens its transfer; false if it must wait for blocks. */
  private boolean start(Job j) {
    try {
      int[] blocks = pool.allocate(pool.layout().blocksFor(j.spec.promptIds().length));
      j.kv = PagedSequenceKv.withReservation(pool, blocks);
    } catch (KvPoolExhaustedException e) {
      return false;
    }
    try {
      j.out = client.open(Location.forGrpcInsecure(j.spec.flightHost(), j.spec.flightPort()), j.spec.transferId());
      OutgoingTransfer out = j.out;
      PagedSequenceKv kv = j.kv;
      kv.setLayerWrittenListener((layer, first, count) -> out.sendLayer(layer, kv, first, first + count));
      return true;
    } catch (RuntimeException e) {
      j.fail(ServingException.unavailable("cannot open a KV transfer to decode node " + j.spec.flightHost() + ":" + j.spec.flightPort() + ": " + e.getMessage(), e));
      return true;
    }
  }

  private void finish(Job j, float[] logits, Sampler sampler) {
    SampleResult first;
    try (CloseableThreadContext.Instance ctx = CloseableThreadContext.put("requestId", j.spec.requestId())) {
      first = sampler.sample(logits, j.spec.params(), new TokenHistory(j.spec.promptIds()), j.spec.seed());
    }
    j.cleanup(); // every layer is sent (copied into the transfer); our blocks are free again
    OutgoingTransfer out = j.out;
    long computeMicros = j.computeNanos / 1000;
    acks.execute(
        () -> {
          long t0 = System.nanoTime();
          try {
            out.complete();
            long kvBytes = out.bytesSent();
            out.close();
            byRequest.remove(j.spec.requestId(), j);
            completed++;
            j.future.complete(
                new PrefillResult(first.tokenId(), first.logprob(), 0, kvBytes, computeMicros, (System.nanoTime() - t0) / 1000));
          } catch (RuntimeException e) {
            out.close();
            byRequest.remove(j.spec.requestId(), j);
            j.future.completeExceptionally(
                j.cancelled
                    ? ServingException.cancelled("request " + j.spec.requestId() + " was cancelled")
                    : ServingException.unavailable("decode node did not take the KV of " + j.spec.requestId() + ": " + e.getMessage(), e));
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
