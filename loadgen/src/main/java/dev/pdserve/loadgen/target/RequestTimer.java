package dev.pdserve.loadgen.target;

import dev.pdserve.loadgen.RequestResult;
import dev.pdserve.loadgen.dataset.BenchRequest;
import java.util.Arrays;
import java.util.function.Consumer;

/**
 * Measures one request at the client: transports call {@link #tokens} as token-bearing messages
 * arrive, {@link #usage} when the server reports counts, then exactly one of {@link #succeed} or
 * {@link #fail}. Calls come from one transport thread at a time (gRPC and the HTTP client serialise
 * a stream's callbacks); the finish is idempotent.
 */
public final class RequestTimer {
  private final BenchRequest request;
  private final int worker;
  private final String requestId;
  private final long runStartNanos;
  private final Consumer<RequestResult> done;
  private long sendAt;
  private long firstAt = -1;
  private long lastAt = -1;
  private long[] itls = new long[16];
  private int itlCount;
  private int streamed;
  private int promptTokens = -1;
  private int completionTokens = -1;
  private int cachedTokens;
  private boolean finished;

  public RequestTimer(
      BenchRequest request,
      int worker,
      String requestId,
      long runStartNanos,
      Consumer<RequestResult> done) {
    this.request = request;
    this.worker = worker;
    this.requestId = requestId;
    this.runStartNanos = runStartNanos;
    this.done = done;
  }

  public BenchRequest request() {
    return request;
  }

  public String requestId() {
    return requestId;
  }

  /** Marks the moment the request goes out. */
  public void sent() {
    sendAt = System.nanoTime();
  }

  /**
   * A message carrying {@code n} tokens arrived now (its arrival time is a TTFT or an ITL sample).
   */
  public synchronized void tokens(int n) {
    long now = System.nanoTime();
    if (firstAt < 0) {
      firstAt = now;
    } else {
      if (itlCount == itls.length) {
        itls = Arrays.copyOf(itls, itls.length * 2);
      }
      itls[itlCount++] = now - lastAt;
    }
    lastAt = now;
    streamed += n;
  }

  /** Counts the server reported; values below 0 mean "not reported". */
  public synchronized void usage(int prompt, int completion, int cached) {
    if (prompt > 0) {
      promptTokens = prompt;
    }
    if (completion > 0) {
      completionTokens = completion;
    }
    cachedTokens = Math.max(cachedTokens, cached);
  }

  public void succeed(String finishReason) {
    finish(RequestResult.OK, "", finishReason);
  }

  public void fail(String status, String message) {
    finish(status, message == null ? "" : message, "");
  }

  private void finish(String status, String error, String finishReason) {
    RequestResult r;
    synchronized (this) {
      if (finished) {
        return;
      }
      finished = true;
      long end = System.nanoTime();
      int out = completionTokens >= 0 ? completionTokens : streamed;
      r =
          new RequestResult(
              request.index(),
              worker,
              requestId,
              sendAt - runStartNanos,
              firstAt < 0 ? -1 : firstAt - sendAt,
              end - sendAt,
              Arrays.copyOf(itls, itlCount),
              promptTokens > 0 ? promptTokens : request.promptTokens(),
              out,
              cachedTokens,
              status,
              error,
              finishReason);
    }
    done.accept(r);
  }
}
