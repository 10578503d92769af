package dev.pdserve.prefill;

import com.google.common.base.Ticker;
import dev.pdserve.core.coordination.DrainReport;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The prompts a prefill engine holds, by request id — queued, computing, or handing their KV over —
 * and the counts its load is reported in. A drain waits here until the last one leaves.
 * Thread-safe: the loop, the acknowledgement hand-off and callers use it at once.
 */
final class HeldJobs {
  /** How often a drain waiting for prompts to leave reads its clock again. */
  private static final long CLOCK_RECHECK_NANOS = TimeUnit.MILLISECONDS.toNanos(10);

  private final Ticker ticker;
  private final Map<String, PrefillJobState> byRequest = new ConcurrentHashMap<>();
  private final AtomicLong queuedTokens = new AtomicLong();
  private final AtomicInteger holdingKv = new AtomicInteger();
  private final AtomicLong completed = new AtomicLong();
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition jobLeft = lock.newCondition();

  /** Prompts whose drain deadline {@code ticker} decides. */
  HeldJobs(Ticker ticker) {
    this.ticker = ticker;
  }

  /** Takes a prompt in; false if one of the same request id is held already. */
  boolean add(PrefillJobState job) {
    if (byRequest.putIfAbsent(job.requestId(), job) != null) {
      return false;
    }
    queuedTokens.addAndGet(job.prompt().length);
    return true;
  }

  PrefillJobState get(String requestId) {
    return byRequest.get(requestId);
  }

  /** The prompt holds its KV now; its cached prefix is not queued for compute any more. */
  void started(PrefillJobState job) {
    queuedTokens.addAndGet(-job.cachedTokens());
    if (job.markHoldingKv()) {
      holdingKv.incrementAndGet();
    }
  }

  /** {@code tokens} queued prompt tokens were computed. */
  void computed(int tokens) {
    queuedTokens.addAndGet(-tokens);
  }

  /** The prompt ended without handing its KV over (failed, cancelled); idempotent. */
  void leave(PrefillJobState job) {
    if (job.clearHoldingKv()) {
      holdingKv.decrementAndGet();
    }
    if (byRequest.remove(job.requestId(), job)) {
      queuedTokens.addAndGet(-job.remainingTokens());
      signalLeft();
    }
  }

  /** The prompt's KV is held by its decode node: it counts as completed. */
  void handedOver(PrefillJobState job) {
    if (job.clearHoldingKv()) {
      holdingKv.decrementAndGet();
    }
    if (byRequest.remove(job.requestId(), job)) {
      completed.incrementAndGet();
      signalLeft();
    }
  }

  private void signalLeft() {
    lock.lock();
    try {
      jobLeft.signalAll();
    } finally {
      lock.unlock();
    }
  }

  int size() {
    return byRequest.size();
  }

  /** Prompt tokens held and not computed yet. */
  long queuedTokens() {
    return queuedTokens.get();
  }

  /** Prompts that handed their KV over, since the start. */
  long completed() {
    return completed.get();
  }

  /** Prompts holding KV: computing, or waiting for their decode node to take it. */
  int holdingKv() {
    return Math.min(byRequest.size(), holdingKv.get());
  }

  /** Prompts queued that have not started (hold no KV yet). */
  int waitingToStart() {
    return Math.max(0, byRequest.size() - holdingKv.get());
  }

  /**
   * Waits until no prompt is held, or until {@code timeout} passes on the ticker. Woken as each
   * prompt leaves; the clock is read again at least every {@value #CLOCK_RECHECK_NANOS} ns.
   */
  DrainReport awaitEmpty(Duration timeout) {
    int held = byRequest.size();
    long deadline = ticker.read() + timeout.toNanos();
    lock.lock();
    try {
      while (!byRequest.isEmpty()) {
        long left = deadline - ticker.read();
        if (left <= 0) {
          return new DrainReport(
              false,
              0,
              held - byRequest.size(),
              byRequest.size() + " prompt(s) still being prefilled");
        }
        jobLeft.awaitNanos(Math.min(left, CLOCK_RECHECK_NANOS));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return new DrainReport(false, 0, held - byRequest.size(), "interrupted");
    } finally {
      lock.unlock();
    }
    return new DrainReport(true, 0, held, "");
  }
}
