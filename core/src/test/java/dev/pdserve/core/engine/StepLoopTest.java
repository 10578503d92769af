package dev.pdserve.core.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

class StepLoopTest {
  /** An idle wait long enough that only a wake can end it within a test. */
  private static final Duration FOREVER = Duration.ofHours(1);

  @Test
  void anIdleLoopRunsAgainWhenWoken() throws Exception {
    ConcurrentLinkedQueue<String> work = new ConcurrentLinkedQueue<>();
    BlockingQueue<String> done = new ArrayBlockingQueue<>(10);
    try (StepLoop loop =
        new StepLoop(
            "test-loop",
            "n1",
            FOREVER,
            () -> {
              String w = work.poll();
              if (w == null) {
                return false;
              }
              done.add(w + "@" + Thread.currentThread().getName());
              return true;
            })) {
      loop.start();
      work.add("a");
      loop.wake();
      assertEquals("a@test-loop", done.poll(30, TimeUnit.SECONDS));
      work.add("b");
      loop.wake();
      assertEquals("b@test-loop", done.poll(30, TimeUnit.SECONDS));
    }
  }

  @Test
  void aFailingTurnDoesNotStopTheLoop() throws Exception {
    AtomicInteger turns = new AtomicInteger();
    BlockingQueue<Integer> seen = new ArrayBlockingQueue<>(10);
    try (StepLoop loop =
        new StepLoop(
            "failing-loop",
            null,
            FOREVER,
            () -> {
              int t = turns.incrementAndGet();
              if (t == 1) {
                throw new IllegalStateException("first turn fails");
              }
              seen.add(t);
              return false;
            })) {
      loop.start();
      assertEquals(2, seen.poll(30, TimeUnit.SECONDS), "the turn after a failure ran");
    }
  }

  @Test
  void closeWaitsForTheRunningTurnAndStartsNoOther() throws Exception {
    AtomicInteger turns = new AtomicInteger();
    AtomicReference<Thread> thread = new AtomicReference<>();
    StepLoop loop =
        new StepLoop(
            "closing-loop",
            null,
            FOREVER,
            () -> {
              thread.set(Thread.currentThread());
              turns.incrementAndGet();
              return true; // always busy: only close stops it
            });
    loop.start();
    while (turns.get() < 3) {
      Thread.onSpinWait();
    }
    loop.close();
    int after = turns.get();
    assertTrue(loop.isClosed());
    assertFalse(thread.get().isAlive(), "the loop's thread ended before close returned");
    assertEquals(after, turns.get(), "no turn ran after close returned");
  }

  @Test
  void idleWaitMustBePositive() {
    assertThrows(
        IllegalArgumentException.class, () -> new StepLoop("x", null, Duration.ZERO, () -> false));
  }
}
