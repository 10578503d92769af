package dev.pdserve.prefill;

import dev.pdserve.core.kv.KvEndpoint;
import dev.pdserve.core.kv.KvPush;
import dev.pdserve.core.kv.KvPusher;
import dev.pdserve.core.kv.PagedSequenceKv;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A {@link KvPusher} over another that can hold a push at one point — when it opens, at its first
 * layer sent, or when it completes — until the test lets it go: how tests pin the engine in a known
 * state (its loop busy, a prompt waiting for its acknowledgement) without sleeping.
 */
final class GatedKvPusher implements KvPusher {
  /** Where a push may be held. */
  enum Point {
    OPEN,
    FIRST_LAYER,
    COMPLETE
  }

  /** One hold: the next push that reaches its point waits there until {@link #release()}. */
  static final class Gate {
    final Point point;
    private final CountDownLatch reached = new CountDownLatch(1);
    private final CountDownLatch released = new CountDownLatch(1);

    private Gate(Point point) {
      this.point = point;
    }

    private void pass() {
      reached.countDown();
      try {
        if (!released.await(30, TimeUnit.SECONDS)) {
          throw new IllegalStateException("gate at " + point + " never released by the test");
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted at gate " + point, e);
      }
    }

    /** Waits until a push is held here. */
    void awaitReached() throws InterruptedException {
      if (!reached.await(30, TimeUnit.SECONDS)) {
        throw new AssertionError("no push reached " + point + " within 30 s");
      }
    }

    void release() {
      released.countDown();
    }
  }

  private final KvPusher delegate;
  private final AtomicReference<Gate> gate = new AtomicReference<>();

  GatedKvPusher(KvPusher delegate) {
    this.delegate = delegate;
  }

  /** Holds the next push that reaches {@code point}. */
  Gate holdNext(Point point) {
    Gate g = new Gate(point);
    gate.set(g);
    return g;
  }

  private void passIfHeld(Point point) {
    Gate g = gate.get();
    if (g != null && g.point == point && gate.compareAndSet(g, null)) {
      g.pass();
    }
  }

  @Override
  public KvPush open(KvEndpoint target, String transferId) {
    passIfHeld(Point.OPEN);
    KvPush push = delegate.open(target, transferId);
    return new KvPush() {
      private boolean sentAny;

      @Override
      public String id() {
        return push.id();
      }

      @Override
      public void sendLayer(int layer, PagedSequenceKv kv, int fromPosition, int toPosition) {
        if (!sentAny) {
          sentAny = true;
          passIfHeld(Point.FIRST_LAYER);
        }
        push.sendLayer(layer, kv, fromPosition, toPosition);
      }

      @Override
      public void complete() {
        passIfHeld(Point.COMPLETE);
        push.complete();
      }

      @Override
      public long bytesSent() {
        return push.bytesSent();
      }

      @Override
      public long firstSendNanos() {
        return push.firstSendNanos();
      }

      @Override
      public void close() {
        push.close();
      }
    };
  }
}
