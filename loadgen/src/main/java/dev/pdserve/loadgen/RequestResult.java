package dev.pdserve.loadgen;

/**
 * What the client saw of one request. Times are nanoseconds; {@code sendNanos} counts from the
 * start of the measured run.
 *
 * @param status {@code OK}, a gRPC status code name ({@code UNAVAILABLE}, ...) or {@code HTTP 503}
 * @param ttftNanos time to the first token, -1 when none arrived
 * @param itlNanos every gap between consecutive token-bearing messages
 * @param promptTokens the server's count when it reports one, else the dataset's
 * @param outputTokens the server's count when it reports one, else the tokens streamed
 */
public record RequestResult(
    long index,
    int worker,
    String requestId,
    long sendNanos,
    long ttftNanos,
    long e2eNanos,
    long[] itlNanos,
    int promptTokens,
    int outputTokens,
    int cachedTokens,
    String status,
    String error,
    String finishReason) {

  public static final String OK = "OK";

  public boolean ok() {
    return OK.equals(status);
  }

  /** (e2e - ttft) / (output - 1) in nanoseconds, or -1 when undefined (fewer than two tokens). */
  public long tpotNanos() {
    return ok() && outputTokens > 1 && ttftNanos >= 0
        ? (e2eNanos - ttftNanos) / (outputTokens - 1)
        : -1;
  }
}
