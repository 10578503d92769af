package dev.pdserve.core.engine;

import dev.pdserve.core.NamedThreadFactory;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The one thread an engine steps on (the prefill and the decode engine each own one): it runs
 * {@link Body#turn()} again and again; when a turn finds nothing to do it sleeps until {@link
 * #wake()} or the idle wait passes. A turn that throws is logged and the loop goes on; {@link
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
