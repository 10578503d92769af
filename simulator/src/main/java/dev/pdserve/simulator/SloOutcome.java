package dev.pdserve.simulator;

import java.util.Arrays;
import java.util.List;

/**
 * How a run's requests fared against the SLOs: how many completed, failed and met both targets
 * (TTFT and TPOT), and the p50 / p90 / p99 of each over the completed requests.
 *
 * @param ttftPercentilesMs TTFT p50, p90, p99 of completed requests (NaN when none completed)
 * @param tpotPercentilesMs TPOT p50, p90, p99 of completed requests (NaN when none completed)
 */
record SloOutcome(
    int completed, int failed, int good, double[] ttftPercentilesMs, double[] tpotPercentilesMs) {

  /**
   * Scores every flight of a finished run: good = TTFT ≤ {@code ttftSloMs} and TPOT ≤ {@code
   * tpotSloMs}.
   */
  static SloOutcome of(List<SimFlight> flights, double ttftSloMs, double tpotSloMs) {
    int completed = 0;
    int failed = 0;
    int good = 0;
    double[] ttft = new double[flights.size()];
    double[] tpot = new double[flights.size()];
    int k = 0;
    for (SimFlight f : flights) {
      if (f.failure != null) {
        failed++;
        continue;
      }
      completed++;
      double t1 = f.firstTokenMs - f.request.arrivalMs();
      double t2 =
          f.request.outputTokens() > 1
              ? (f.finishMs - f.firstTokenMs) / (f.request.outputTokens() - 1)
              : 0;
      ttft[k] = t1;
      tpot[k] = t2;
      k++;
      if (t1 <= ttftSloMs && t2 <= tpotSloMs) {
        good++;
      }
    }
    return new SloOutcome(
        completed,
        failed,
        good,
        percentiles(Arrays.copyOf(ttft, k)),
        percentiles(Arrays.copyOf(tpot, k)));
  }

  private static double[] percentiles(double[] v) {
    if (v.length == 0) {
      return new double[] {Double.NaN, Double.NaN, Double.NaN};
    }
    Arrays.sort(v);
    return new double[] {pick(v, 0.50), pick(v, 0.90), pick(v, 0.99)};
  }

  private static double pick(double[] sorted, double q) {
    int i = (int) Math.ceil(q * sorted.length) - 1;
    return sorted[Math.max(0, Math.min(sorted.length - 1, i))];
  }
}
