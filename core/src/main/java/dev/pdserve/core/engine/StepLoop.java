package dev.pdserve.core.engine;

import dev.pdserve.core.NamedThreadFactory;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The one thread an engine steps on (the prefill and the decode engine each own one): it runs
 * {@link Body#turn()} again and again; when a turn finds nothing to do it sleeps until {@link
 * #wake()} or the idle wait passes. A turn that throws a RuntimeException is logged and the loop
 * goes on; one that throws anything else (an Error such as an OutOfMemoryError) ends the loop: the
 * cause is logged once, at ERROR with its stack, and {@link #died()} completes with it (on the
 * loop's thread, before that thread ends) so the engine can end what the loop held. {@link
 * #close()} stops it.
 */
public final class StepLoop implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(StepLoop.class);

  /** One turn of an engine's loop. */
  @FunctionalInterface
  public interface Body {
    /**
     * Does one unit of work (take new work in, run a step).
     *
     * @return false when there was nothing to do: the loop then waits to be woken
     */
    boolean turn() throws InterruptedException;
  }

  private final String name;
  private final Body body;
  private final long idleWaitNanos;
  private final Thread thread;
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition woken = lock.newCondition();
  private boolean wakePending; // guarded by lock
  private volatile boolean closed;
  private final CompletableFuture<Throwable> died = new CompletableFuture<>();

  /**
   * A loop named {@code name} (its thread's name) whose thread carries {@code nodeId} in its log
   * context; not started.
   *
   * @param idleWait the longest an idle loop sleeps before it looks for work again on its own
   */
  public StepLoop(String name, String nodeId, Duration idleWait, Body body) {
    if (idleWait.isNegative() || idleWait.isZero()) {
      throw new IllegalArgumentException("idle wait must be > 0, got " + idleWait);
    }
    this.name = name;
    this.body = body;
    this.idleWaitNanos = idleWait.toNanos();
    this.thread = NamedThreadFactory.thread(name, true, nodeId, this::run);
  }

  /** Starts the thread (once). */
  public StepLoop start() {
    thread.start();
    return this;
  }

  /** Tells an idle loop there is work; a wake while it is busy makes its next idle wait return. */
  public void wake() {
    lock.lock();
    try {
      wakePending = true;
      woken.signalAll();
    } finally {
      lock.unlock();
    }
  }

  /** Whether {@link #close()} was called. */
  public boolean isClosed() {
    return closed;
  }

  /**
   * Completes with the cause when a turn threw something other than a RuntimeException and the loop
   * ended; never completes for a loop that runs until {@link #close()}. Its actions run on the
   * dying loop's thread ({@link #close()} waits for them), or at once when it died already.
   */
  public CompletionStage<Throwable> died() {
    return died.minimalCompletionStage();
  }

  /** Whether the loop ended because a turn threw (see {@link #died()}). */
  public boolean isDead() {
    return died.isDone();
  }

  /** Whether the calling thread is this loop's. */
  public boolean onLoopThread() {
    return Thread.currentThread() == thread;
  }

  private void run() {
    while (!closed) {
      try {
        if (!body.turn()) {
          idle();
        }
      } catch (InterruptedException e) {
        if (closed) {
          return;
        }
        Thread.interrupted(); // an interrupt that is not a stop: keep going
      } catch (RuntimeException e) {
        LOG.error("{} error", name, e);
      } catch (
          Throwable t) { // an Error: what the loop held may be half-done; it runs no more turns
        LOG.error("{} died of {}; it runs no more turns", name, t.toString(), t);
        died.complete(t);
        return;
      }
    }
  }

  private void idle() throws InterruptedException {
    lock.lock();
    try {
      long left = idleWaitNanos;
      while (!wakePending && !closed && left > 0) {
        left = woken.awaitNanos(left);
      }
      wakePending = false;
    } finally {
      lock.unlock();
    }
  }

  /** Stops the loop: the running turn finishes (waited for up to 5 s), no other starts. */
  @Override
  public void close() {
    closed = true;
    wake();
    if (Thread.currentThread() == thread) {
      return;
    }
    try {
      thread.join(TimeUnit.SECONDS.toMillis(5));
      if (thread.isAlive()) {
        thread.interrupt();
        thread.join(TimeUnit.SECONDS.toMillis(1));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
