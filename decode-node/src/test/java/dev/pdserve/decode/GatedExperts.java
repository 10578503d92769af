package dev.pdserve.decode;

import dev.pdserve.model.engine.ExpertBackend;
import dev.pdserve.model.engine.RoutedBatch;

/**
 * The routed experts behind a gate a test can shut: while it is shut, every forward pass (a decode
 * step, a local prefill) stops at its next MoE layer until the gate opens. Lets a test hold a
 * sequence in the batch, at a point it chose, while it arranges what comes next.
 */
final class GatedExperts implements ExpertBackend {
  private final ExpertBackend delegate;
  private boolean shut; // guarded by this
  private int callsBeforeShut = -1; // guarded by this; -1: no limit

  GatedExperts(ExpertBackend delegate) {
    this.delegate = delegate;
  }

  /** Stops every forward pass at its next MoE layer. */
  synchronized void shut() {
    shut = true;
  }

  /**
   * Lets {@code calls} more expert calls through, then shuts. A forward pass makes one call per MoE
   * layer, so {@code n × layers} calls let at least {@code n} passes through.
   */
  synchronized void shutAfter(int calls) {
    callsBeforeShut = calls;
    shut = calls == 0;
  }

  synchronized void open() {
    shut = false;
    callsBeforeShut = -1;
    notifyAll();
  }

  @Override
  public float[] routed(RoutedBatch batch) {
    synchronized (this) {
      while (shut) {
        try {
          wait();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IllegalStateException("interrupted at the experts' gate", e);
        }
      }
      if (callsBeforeShut > 0 && --callsBeforeShut == 0) {
        shut = true; // this call passes, the next one waits
      }
    }
    return delegate.routed(batch);
  }
}
