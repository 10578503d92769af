package dev.pdserve.launcher.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.testing.FakeTicker;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** {@code pdserve local}'s restart policy: bounded per child within a window, backing off. */
class ChildRestartsTest {
  final FakeTicker clock = new FakeTicker();
  final ChildRestarts restarts =
      new ChildRestarts(ChildRestarts.Limits.of(3, Duration.ofMinutes(10)), clock);

  @Test
  void aDyingChildIsRestartedThreeTimesWithDoublingBackOffThenGivenUp() {
    ChildRestarts.Decision first = restarts.exited("e1");
    assertEquals(new ChildRestarts.Decision(true, Duration.ofSeconds(1), 1, 3), first);
    assertEquals(
        "child e1 exited with code 137; restarting in 1s (attempt 1 of 3)",
        restarts.describe("e1", 137, first));
    clock.advance(Duration.ofSeconds(20));
    assertEquals(Duration.ofSeconds(2), restarts.exited("e1").delay());
    clock.advance(Duration.ofSeconds(20));
    ChildRestarts.Decision third = restarts.exited("e1");
    assertEquals(new ChildRestarts.Decision(true, Duration.ofSeconds(4), 3, 3), third);
    clock.advance(Duration.ofSeconds(20));
    ChildRestarts.Decision spent = restarts.exited("e1");
    assertFalse(spent.restart());
    assertEquals(
        "child e1 exited with code 1; it was restarted 3 time(s) within 600s already"
            + " (pdserve.local.restart-limit = 3); stopping the cluster",
        restarts.describe("e1", 1, spent));
  }

  @Test
  void restartsOlderThanTheWindowNoLongerCountAndChildrenCountApart() {
    restarts.exited("d0");
    restarts.exited("d0");
    restarts.exited("d0");
    assertTrue(restarts.exited("p0").restart(), "another child has its own restarts");
    assertFalse(restarts.exited("d0").restart());
    clock.advance(Duration.ofMinutes(10));
    ChildRestarts.Decision again = restarts.exited("d0");
    assertTrue(again.restart(), "the window passed");
    assertEquals(1, again.attempt());
    assertEquals(Duration.ofSeconds(1), again.delay());
  }

  @Test
  void theBackOffIsCappedAndALimitOfZeroNeverRestarts() {
    ChildRestarts many =
        new ChildRestarts(
            new ChildRestarts.Limits(
                10, Duration.ofHours(1), Duration.ofSeconds(1), Duration.ofSeconds(30)),
            clock);
    Duration last = Duration.ZERO;
    for (int i = 0; i < 10; i++) {
      last = many.exited("r").delay();
    }
    assertEquals(Duration.ofSeconds(30), last);
    ChildRestarts never =
        new ChildRestarts(ChildRestarts.Limits.of(0, Duration.ofMinutes(1)), clock);
    assertFalse(never.exited("r").restart());
  }
}
