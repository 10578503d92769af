package dev.pdserve.simulator;

/**
 * One request of a simulated workload.
 *
 * @param id index in the workload
 * @param arrivalMs arrival time
 * @param inputTokens prompt length
 * @param outputTokens tokens to generate (≥ 1; the first comes from prefill)
 */
public record SimRequest(int id, double arrivalMs, int inputTokens, int outputTokens) {
  public SimRequest {
    if (inputTokens < 1 || outputTokens < 1 || arrivalMs < 0) {
      throw new IllegalArgumentException(
          "request "
              + id
              + ": input and output must be >= 1 and arrival >= 0, got "
              + inputTokens
              + "/"
              + outputTokens
              + " at "
              + arrivalMs);
    }
  }
}
