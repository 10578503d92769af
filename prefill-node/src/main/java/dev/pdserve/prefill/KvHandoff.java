package dev.pdserve.prefill;

import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.kv.KvPush;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.sampling.SampleResult;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The end of a prefill: once a prompt's last chunk is computed and its first token sampled, waits
 * (off the prefill loop) for the decode node to acknowledge the whole KV, then keeps the prompt's
 * full blocks in the prefix cache, frees the rest and completes the prompt's future with the first
 * token; or, if the decode node did not take the KV, frees it and fails the future. Owns its
 * threads ({@code prefill-ack-N}); {@link #close()} lets hand-offs under way finish (up to 5 s).
 */
final class KvHandoff implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(KvHandoff.class);
  private static final int THREADS = 2;

  private final PrefillKv kv;
  private final HeldJobs jobs;
  private final PrefillMetrics metrics;
  private final String nodeId;
  private final Runnable kvFreed;
  private final ExecutorService acks;

  /**
   * @param kvFreed told after a hand-off gave blocks back (a prompt waiting for blocks may start)
   */
  KvHandoff(PrefillKv kv, HeldJobs jobs, PrefillMetrics metrics, String nodeId, Runnable kvFreed) {
    this.kv = kv;
    this.jobs = jobs;
    this.metrics = metrics;
    this.nodeId = nodeId;
    this.kvFreed = kvFreed;
    this.acks =
        Executors.newFixedThreadPool(THREADS, new NamedThreadFactory("prefill-ack", true, nodeId));
  }

  /** Hands {@code job}, fully computed, over to its decode node; returns at once. */
  void handOff(PrefillJobState job, SampleResult first) {
    acks.execute(() -> awaitAcknowledgement(job, first));
  }

  private void awaitAcknowledgement(PrefillJobState job, SampleResult first) {
    String id = job.requestId();
    KvPush push = job.push();
    long computeMicros = job.computeNanos() / 1000;
    try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, id)) {
      long t0 = System.nanoTime();
      try {
        push.complete();
        long acked = System.nanoTime();
        long kvBytes = push.bytesSent();
        long firstSent = push.firstSendNanos();
        kv.commit(job); // the decode node holds every layer: our blocks are no longer read
        jobs.handedOver(job);
        metrics.kvSent(kvBytes, firstSent == 0 ? 0 : acked - firstSent);
        LOG.debug(
            "prefill of request {} done: first token {}, {} KV bytes acknowledged by the decode node, {} ms computing",
            id,
            first.tokenId(),
            kvBytes,
            computeMicros / 1000);
        job.result()
            .complete(
                new PrefillResult(
                    first.tokenId(),
                    first.logprob(),
                    job.cachedTokens(),
                    kvBytes,
                    computeMicros,
                    (acked - t0) / 1000,
                    job.cachedPromptBlocks()));
      } catch (RuntimeException e) {
        kv.release(job);
        jobs.leave(job);
        LOG.debug("KV of request {} not taken by the decode node: {}", id, e.toString());
        job.result()
            .completeExceptionally(
                job.cancelled()
                    ? ServingException.cancelled("request " + id + " was cancelled")
                    : ServingException.unavailable(
                        "decode node did not take the KV of " + id + ": " + e.getMessage(), e));
      } finally {
        kvFreed.run();
      }
    }
  }

  @Override
  public void close() {
    acks.shutdown();
    try {
      acks.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
