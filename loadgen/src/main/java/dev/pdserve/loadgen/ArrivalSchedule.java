package dev.pdserve.loadgen;

import org.apache.commons.math3.distribution.GammaDistribution;
import org.apache.commons.math3.random.Well19937c;

/**
 * Request arrival times, in seconds from the start, one after another (vLLM's model): inter-arrival
 * gaps are gamma distributed with shape = {@code burstiness} and mean {@code 1/rate} (burstiness 1
 * is a Poisson process; below 1 burstier, above 1 more regular). An infinite rate sends everything
 * at time 0.
 *
 * <p>With a ramp-up of {@code S} seconds the rate grows linearly from 0 to {@code rate} over {@code
 * S} seconds and stays there: the gaps are drawn at the full rate and then time-changed through the
 * inverse of the cumulative rate ({@code Λ(t) = rate·t²/(2S)} for {@code t < S}), so burstiness is
 * kept during the ramp.
 *
 * <p>The same seed gives the same times. Not thread-safe: one schedule per worker.
 */
public final class ArrivalSchedule {
  private final double rate;
  private final double rampUp;
  private final GammaDistribution gaps;
  private double fullRateClock; // cumulative gaps at the full rate

  public ArrivalSchedule(double rate, double burstiness, double rampUpSeconds, long seed) {
    if (!(rate > 0)) {
      throw new IllegalArgumentException("--request-rate must be > 0 (or inf), got " + rate);
    }
    if (!(burstiness > 0) || Double.isInfinite(burstiness)) {
      throw new IllegalArgumentException(
          "--burstiness must be a finite number > 0, got " + burstiness);
    }
    if (!(rampUpSeconds >= 0)) {
      throw new IllegalArgumentException("--ramp-up-seconds must be >= 0, got " + rampUpSeconds);
    }
    this.rate = rate;
    this.rampUp = Double.isInfinite(rate) ? 0 : rampUpSeconds;
    this.gaps =
        Double.isInfinite(rate)
            ? null
            : new GammaDistribution(
                new Well19937c(seed),
                burstiness,
                1.0 / (rate * burstiness),
                GammaDistribution.DEFAULT_INVERSE_ABSOLUTE_ACCURACY);
  }

  /** The next arrival time in seconds from the start. */
  public double next() {
    if (gaps == null) {
      return 0.0;
    }
    fullRateClock += gaps.sample();
    if (rampUp <= 0) {
      return fullRateClock;
    }
    // expected arrivals by full-rate time T are rate*T; find t with Λ(t) = rate*T
    double half = rampUp / 2;
    return fullRateClock < half ? Math.sqrt(2 * rampUp * fullRateClock) : fullRateClock + half;
  }

  public double rate() {
    return rate;
  }
}
