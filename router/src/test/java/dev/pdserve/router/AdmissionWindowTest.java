package dev.pdserve.router;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * The overload guard's congestion window on requests awaiting their first token: slow start from 64
 * (half again per round trip), growth only while in use, a narrowing per round trip on late first
 * tokens or old waiting requests, and slow start again after an idle spell. Times are plain
 * nanosecond readings.
 */
class AdmissionWindowTest {
  private static final long MS = 1_000_000L;
  private static final long BOUND = 2_000 * MS; // target: 1.2 s

  @Test
  void startsAt64AndAlwaysAdmitsARequestWithNothingWaiting() {
    AdmissionWindow w = new AdmissionWindow(BOUND);
    assertEquals(64, w.size());
    assertEquals(1_200 * MS, w.targetNanos());
    assertTrue(w.admits(63));
    assertFalse(w.admits(64));
    assertTrue(w.admits(0));
  }

  @Test
  void onTimeFirstTokensWidenItOnlyWhileItIsInUse() {
    AdmissionWindow w = new AdmissionWindow(BOUND);
    w.firstToken(0, 100 * MS, 3); // 4 of 64 in use: no evidence that more would be on time
    assertEquals(64, w.size());
    for (int i = 0; i < 8; i++) {
      w.firstToken(i * MS, 100 * MS, 40); // over half in use: slow start, half per first token
    }
    assertEquals(68, w.size());
    assertTrue(w.slowStart());
  }

  @Test
  void inSlowStartItGrowsAtMostHalfAgainPerTarget() {
    AdmissionWindow w = new AdmissionWindow(BOUND);
    for (int i = 0; i < 200; i++) {
      w.firstToken(i * MS, 20 * MS, 60); // 200 fast first tokens within 0.2 s: capped at 64 x 1.5
    }
    assertEquals(96, w.size());
    for (int i = 0; i < 200; i++) {
      w.firstToken((1_200 + i) * MS, 20 * MS, 90); // the next epoch (1.2 s on): 96 x 1.5
    }
    assertEquals(144, w.size());
    w.firstToken(2_500 * MS, 700 * MS, 140); // on time, but past half the target: slow start ends
    assertEquals(100, w.size());
    assertFalse(w.slowStart());
  }

  @Test
  void aLateFirstTokenNarrowsItOncePerRoundTripAndEndsSlowStart() {
    AdmissionWindow w = new AdmissionWindow(BOUND);
    w.firstToken(0, 1_500 * MS, 40); // late: 64 x 0.7
    assertEquals(44, w.size());
    assertFalse(w.slowStart());
    w.firstToken(500 * MS, 1_500 * MS, 40); // the same congestion: within one round trip (1.2 s)
    assertEquals(44, w.size());
    w.firstToken(1_300 * MS, 1_500 * MS, 40); // a round trip later: again
    assertEquals(31, w.size());
    for (int i = 0; i < 100; i++) {
      w.firstToken((2_600 + i) * MS, 1_500 * MS, 40);
    }
    for (int i = 0; i < 20; i++) {
      w.firstToken((4_000L + 1_300L * i) * MS, 1_500 * MS, 40);
    }
    assertEquals((int) AdmissionWindow.MIN, w.size(), "never below the minimum");
  }

  @Test
  void afterSlowStartItGrowsByAboutOneAWindowOfFirstTokens() {
    AdmissionWindow w = new AdmissionWindow(BOUND);
    w.firstToken(0, 1_500 * MS, 30); // 44.8
    for (int i = 0; i < 45; i++) {
      w.firstToken((10 + i) * MS, 100 * MS, 30);
    }
    assertEquals(45, w.size(), "44.8 + 45 x ~1/45");
  }

  @Test
  void aRequestWaitingPastTheTargetNarrowsItBeforeItsFirstTokenComes() {
    AdmissionWindow w = new AdmissionWindow(BOUND);
    w.waitingAge(0, 500 * MS);
    assertEquals(64, w.size());
    w.waitingAge(10 * MS, 700 * MS); // in slow start, half the target is enough
    assertEquals(44, w.size());
    w.waitingAge(2_000 * MS, 1_000 * MS); // afterwards the target itself
    assertEquals(44, w.size());
    w.waitingAge(2_010 * MS, 1_300 * MS);
    assertEquals(31, w.size());
  }

  @Test
  void slowStartBeginsAgainAfterFiveIdleSeconds() {
    AdmissionWindow w = new AdmissionWindow(BOUND);
    w.admitted(0, 0);
    w.firstToken(1_500 * MS, 1_500 * MS, 0); // late, and nothing waits afterwards
    assertFalse(w.slowStart());
    w.admitted(3_000 * MS, 0); // idle 1.5 s only
    assertFalse(w.slowStart());
    w.firstToken(3_100 * MS, 100 * MS, 0);
    w.admitted(8_200 * MS, 0); // idle 5.1 s
    assertTrue(w.slowStart());
    assertEquals(44, w.size(), "from the window it had");
  }
}
