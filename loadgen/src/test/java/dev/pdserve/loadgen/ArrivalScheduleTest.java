package dev.pdserve.loadgen;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Inter-arrival statistics of the schedule (no clocks involved: the schedule is a number stream).
 */
class ArrivalScheduleTest {
  private static final int N = 40_000;

  @ParameterizedTest(name = "rate {0}/s, burstiness {1}")
  @CsvSource({"10, 1", "10, 0.5", "10, 4", "250, 1", "2, 2"})
  void gapsHaveMeanOneOverRateAndGammaSpread(double rate, double burstiness) {
    ArrivalSchedule s = new ArrivalSchedule(rate, burstiness, 0, 17);
    double prev = 0;
    double sum = 0;
    double sumSq = 0;
    for (int i = 0; i < N; i++) {
      double t = s.next();
      double gap = t - prev;
      assertTrue(gap >= 0, "arrivals never go back in time");
      prev = t;
      sum += gap;
      sumSq += gap * gap;
    }
    double mean = sum / N;
    double var = sumSq / N - mean * mean;
    double cv = Math.sqrt(var) / mean;
    assertEquals(1 / rate, mean, 0.03 / rate, "mean gap 1/rate");
    // gamma(shape k): coefficient of variation 1/sqrt(k); Poisson (k = 1): CV 1
    assertEquals(
        1 / Math.sqrt(burstiness),
        cv,
        0.05 / Math.sqrt(burstiness),
        "coefficient of variation of the gaps");
  }

  @Test
  void sameSeedSameTimes() {
    ArrivalSchedule a = new ArrivalSchedule(5, 1, 0, 99);
    ArrivalSchedule b = new ArrivalSchedule(5, 1, 0, 99);
    ArrivalSchedule c = new ArrivalSchedule(5, 1, 0, 100);
    boolean differs = false;
    for (int i = 0; i < 100; i++) {
      double x = a.next();
      assertEquals(x, b.next());
      differs |= x != c.next();
    }
    assertTrue(differs);
  }

  @Test
  void infiniteRateSendsEverythingAtOnce() {
    ArrivalSchedule s = new ArrivalSchedule(Double.POSITIVE_INFINITY, 1, 0, 1);
    for (int i = 0; i < 10; i++) {
      assertEquals(0.0, s.next());
    }
  }

  @Test
  void rampUpGrowsTheRateLinearly() {
    double rate = 100;
    double ramp = 20;
    ArrivalSchedule s = new ArrivalSchedule(rate, 1, ramp, 5);
    int firstHalf = 0;
    int secondHalf = 0;
    int afterRamp = 0;
    double t;
    while ((t = s.next()) < ramp + 10) {
      if (t < ramp / 2) {
        firstHalf++;
      } else if (t < ramp) {
        secondHalf++;
      } else {
        afterRamp++;
      }
    }
    // expected: rate*(ramp/2)^2/(2 ramp) = 250 in the first half, 750 in the second, 1000 in the 10
    // s after
    assertEquals(250, firstHalf, 60);
    assertEquals(750, secondHalf, 100);
    assertEquals(1000, afterRamp, 110);
  }

  @Test
  void badParametersAreRefused() {
    assertTrue(
        assertThrows(IllegalArgumentException.class, () -> new ArrivalSchedule(0, 1, 0, 1))
            .getMessage()
            .contains("--request-rate"));
    assertTrue(
        assertThrows(IllegalArgumentException.class, () -> new ArrivalSchedule(1, 0, 0, 1))
            .getMessage()
            .contains("--burstiness"));
  }
}
