package dev.pdserve.simulator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class SloOutcomeTest {
  /**
   * A finished flight: arrived at 0, first token after {@code ttftMs}, then {@code tpotMs} per
   * token.
   */
  private static SimFlight finished(int id, double ttftMs, double tpotMs, int outputTokens) {
    SimFlight f = new SimFlight(new SimRequest(id, 0, 100, outputTokens));
    f.firstTokenMs = ttftMs;
    f.finishMs = ttftMs + tpotMs * (outputTokens - 1);
    return f;
  }

  @Test
  void goodMeansBothTargetsMetAndFailuresAreCountedApart() {
    List<SimFlight> flights = new ArrayList<>();
    flights.add(finished(0, 100, 10, 11)); // good
    flights.add(finished(1, 2000, 50, 11)); // good: both exactly at the targets
    flights.add(finished(2, 2001, 10, 11)); // TTFT missed
    flights.add(finished(3, 100, 51, 11)); // TPOT missed
    flights.add(finished(4, 300, 999, 1)); // one token: TPOT is 0, good
    SimFlight failed = new SimFlight(new SimRequest(5, 0, 100, 5));
    failed.failure = "needs 9 KV blocks";
    flights.add(failed);

    SloOutcome o = SloOutcome.of(flights, 2000, 50);

    assertEquals(5, o.completed(), "completed");
    assertEquals(1, o.failed(), "failed");
    assertEquals(3, o.good(), "requests meeting both SLOs");
    // nearest rank over the 5 completed: p50 = 3rd, p90 and p99 = 5th smallest
    assertArrayEquals(
        new double[] {300, 2001, 2001}, o.ttftPercentilesMs(), 1e-9, "TTFT p50/90/99");
    assertArrayEquals(new double[] {10, 51, 51}, o.tpotPercentilesMs(), 1e-9, "TPOT p50/90/99");
  }

  @Test
  void noCompletedRequestGivesNotANumberPercentiles() {
    SimFlight failed = new SimFlight(new SimRequest(0, 0, 100, 5));
    failed.failure = "unfinished";

    SloOutcome o = SloOutcome.of(List.of(failed), 2000, 50);

    assertEquals(0, o.completed());
    assertEquals(1, o.failed());
    for (double p : o.ttftPercentilesMs()) {
      assertTrue(Double.isNaN(p), "TTFT percentile of no requests: " + p);
    }
    for (double p : o.tpotPercentilesMs()) {
      assertTrue(Double.isNaN(p), "TPOT percentile of no requests: " + p);
    }
  }
}
