package dev.pdserve.core.metrics;

/**
 * Histogram bucket upper bounds. The vLLM-named latency histograms keep vLLM's bounds and add finer
 * ones below vLLM's smallest, where a small model on a CPU answers (vLLM's request latency buckets
 * start at 300 ms, its inter-token ones at 10 ms): a dashboard built for vLLM still works, and
 * percentiles of fast requests are not all one bucket.
 */
public final class MetricBuckets {
  private MetricBuckets() {}

  /**
   * vLLM's time-to-first-token bounds (1 ms .. 2560 s), with finer ones added below 500 ms (2.5,
   * 7.5, 15, 30, 50 ms; 150, 200, 300, 400 ms): a load tester's client-side percentiles can be
   * compared with these within a few milliseconds.
   */
  public static final double[] TIME_TO_FIRST_TOKEN = {
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.2,
    0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0
  };

  /**
   * vLLM's inter-token bounds (10 ms .. 80 s), with finer ones below 50 ms (0.5 ms .. 40 ms): a
   * small model on a CPU has inter-token latencies of a few milliseconds.
   */
  public static final double[] INTER_TOKEN = {
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.0125, 0.015, 0.02,
    0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0
  };

  /** vLLM's request latency bounds (300 ms .. 7680 s), with 1 ms .. 100 ms below. */
  public static final double[] REQUEST_LATENCY = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0,
    15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0
  };

  /** Steps and transfers: 100 µs .. 60 s. */
  public static final double[] SHORT_DURATION = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0
  };

  /** Bytes of one request's KV: 4 KiB .. 4 GiB in steps of 4×. */
  public static final double[] KV_BYTES = {
    4096.0,
    16384.0,
    65536.0,
    262144.0,
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
    1073741824.0,
    4294967296.0
  };

  /** Sequences in a decode step. */
  public static final double[] BATCH_SIZE = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};

  /** Prompt tokens in a prefill step. */
  public static final double[] STEP_TOKENS = {
    16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384
  };
}
