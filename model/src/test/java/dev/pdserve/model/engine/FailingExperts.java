package dev.pdserve.model.engine;

import java.time.Duration;
import java.util.concurrent.TimeoutException;

/**
 * Routed experts that fail a chosen forward pass with an {@link Error} (an OutOfMemoryError for
 * direct memory, say), for tests of what an engine does when its step loop dies: once armed, the
 * next call — the next step's first MoE layer — stops at a gate (so the test can queue more work
 * behind it), and when released throws the error instead of computing. Every other call is the
 * delegate's.
 */
public final class FailingExperts implements ExpertBackend {
  private final ExpertBackend delegate;
  private Error armed; // guarded by this
  private boolean held; // guarded by this: a call waits at the gate
  private boolean released; // guarded by this

  public FailingExperts(ExpertBackend delegate) {
    this.delegate = delegate;
  }

  /** The next call waits at the gate until {@link #release()}, then throws {@code error}. */
  public synchronized void failNextCall(Error error) {
    armed = error;
    released = false;
  }

  /** Waits until the armed call is waiting at the gate. */
  public synchronized void awaitHeld(Duration timeout)
      throws InterruptedException, TimeoutException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!held) {
      long left = deadline - System.nanoTime();
      if (left <= 0) {
        throw new TimeoutException("no forward pass reached the failing experts in " + timeout);
      }
      wait(Math.max(1, left / 1_000_000));
    }
  }

  /** Lets the call waiting at the gate throw its error. */
  public synchronized void release() {
    released = true;
    notifyAll();
  }

  @Override
  public float[] routed(RoutedBatch batch) {
    Error error;
    synchronized (this) {
      error = armed;
      if (error != null) {
        armed = null;
        held = true;
        notifyAll();
        while (!released) {
          try {
            wait();
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted at the failing experts' gate", e);
          }
        }
        held = false;
      }
    }
    if (error != null) {
      throw error;
    }
    return delegate.routed(batch);
  }
}
