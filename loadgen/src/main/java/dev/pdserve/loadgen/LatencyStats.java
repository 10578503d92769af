package dev.pdserve.loadgen;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Base64;
import java.util.zip.DataFormatException;
import org.HdrHistogram.Histogram;

/**
 * One latency metric of a run (TTFT, TPOT, ITL or E2E): an HdrHistogram of microseconds (3
 * significant digits, auto-resizing) plus the exact sum, so the mean is exact and runs merge by
 * adding histograms — percentiles of a merge are percentiles of the union, never averages.
 */
public final class LatencyStats {
  private final Histogram hist;
  private double sumMs;

  public LatencyStats() {
    this(new Histogram(3));
  }

  private LatencyStats(Histogram h) {
    h.setAutoResize(true);
    this.hist = h;
  }

  public void recordNanos(long nanos) {
    long us = Math.max(0, nanos / 1000);
    hist.recordValue(us);
    sumMs += us / 1000.0;
  }

  public void add(LatencyStats other) {
    hist.add(other.hist);
    sumMs += other.sumMs;
  }

  public long count() {
    return hist.getTotalCount();
  }

  public double meanMs() {
    return count() == 0 ? 0 : sumMs / count();
  }

  public double sumMs() {
    return sumMs;
  }

  public double stdMs() {
    return count() == 0 ? 0 : hist.getStdDeviation() / 1000.0;
  }

  /** The value at percentile {@code p} (0..100) in milliseconds; 0 for an empty metric. */
  public double percentileMs(double p) {
    return count() == 0 ? 0 : hist.getValueAtPercentile(p) / 1000.0;
  }

  public double maxMs() {
    return count() == 0 ? 0 : hist.getMaxValue() / 1000.0;
  }

  public Histogram histogram() {
    return hist;
  }

  /** The histogram, compressed and base64-encoded (HdrHistogram's portable encoding). */
  public String encode() {
    ByteBuffer buf = ByteBuffer.allocate(hist.getNeededByteBufferCapacity());
    int n = hist.encodeIntoCompressedByteBuffer(buf);
    return Base64.getEncoder().encodeToString(Arrays.copyOf(buf.array(), n));
  }

  public static LatencyStats decode(String base64, double sumMs) {
    try {
      Histogram h =
          Histogram.decodeFromCompressedByteBuffer(
              ByteBuffer.wrap(Base64.getDecoder().decode(base64)), 0);
      LatencyStats s = new LatencyStats(h);
      s.sumMs = sumMs;
      return s;
    } catch (DataFormatException | IllegalArgumentException e) {
      throw new IllegalArgumentException("not an encoded HdrHistogram: " + e.getMessage(), e);
    }
  }
}
