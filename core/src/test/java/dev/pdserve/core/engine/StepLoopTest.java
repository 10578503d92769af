package dev.pdserve.core.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
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
  void aTurnThrowingAnErrorEndsTheLoopAndReportsTheCauseOnce() throws Exception {
    AtomicInteger turns = new AtomicInteger();
    AtomicReference<Thread> thread = new AtomicReference<>();
    OutOfMemoryError oom = new OutOfMemoryError("Direct buffer memory");
    BlockingQueue<String> reports = new ArrayBlockingQueue<>(10);
    try (StepLoop loop =
        new StepLoop(
            "dying-loop",
            null,
            Duration.ofMillis(1), // an idle loop would run turns again and again
            () -> {
              thread.set(Thread.currentThread());
              if (turns.incrementAndGet() == 2) {
                throw oom;
              }
              return false;
            })) {
      loop.died()
          .thenAccept(t -> reports.add(Thread.currentThread().getName() + ": " + t.getMessage()));
      loop.start();
      assertEquals(
          "dying-loop: Direct buffer memory",
          reports.poll(30, TimeUnit.SECONDS),
          "died() completes with the Error, on the loop's thread");
      assertSame(oom, loop.died().toCompletableFuture().get(30, TimeUnit.SECONDS));
      thread.get().join(TimeUnit.SECONDS.toMillis(30));
      assertFalse(thread.get().isAlive(), "the loop's thread ended");
      assertTrue(loop.isDead());
      assertFalse(loop.isClosed(), "it died; nobody closed it");
      loop.wake();
      assertEquals(2, turns.get(), "no turn ran after the Error");
      assertTrue(reports.isEmpty(), "the death is reported once");
    }
  }

  @Test
  void aLoopThatIsClosedDidNotDie() throws Exception {
    StepLoop loop = new StepLoop("closed-loop", null, FOREVER, () -> false).start();
    loop.close();
    assertFalse(loop.isDead());
    assertFalse(loop.died().toCompletableFuture().isDone());
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
