package dev.pdserve.router;

import com.google.common.base.Ticker;
import dev.pdserve.core.serving.ServingException;
import java.util.function.Consumer;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Ends requests, each exactly once: moves it to {@link RequestState#FINISHED}, lets the router free
 * its slot, stops what it held (cancels its calls, releases a reservation the router held), then
 * sends its one outcome to the sink and the metrics. Whoever ends a request second finds it
 * finished and does nothing.
 */
final class RequestOutcomes {
  private static final Logger LOG = LogManager.getLogger(RequestOutcomes.class);

  private final NodeClients clients;
  private final RouterMetrics metrics;
  private final Ticker ticker;
  private final Consumer<InFlightRequest> onEnded;

  /**
   * @param onEnded called once per request as it ends, before its outcome is sent (the router
   *     forgets it and frees its admission slot)
   */
  RequestOutcomes(
      NodeClients clients,
      RouterMetrics metrics,
      Ticker ticker,
      Consumer<InFlightRequest> onEnded) {
    this.clients = clients;
    this.metrics = metrics;
    this.ticker = ticker;
    this.onEnded = onEnded;
  }

  /** The request's decode stream completed: its completion goes to the sink. */
  void complete(
      InFlightRequest f,
      String finishReason,
      String stopReason,
      int completionTokens,
      int cachedTokens) {
    end(f, finishReason, stopReason, completionTokens, cachedTokens, "request ended");
  }

  /** The client aborted the request: it completes with finish reason {@code abort}. */
  void abort(InFlightRequest f) {
    end(f, "abort", null, 0, 0, "aborted by the client");
  }

  private void end(
      InFlightRequest f,
      String finishReason,
      String stopReason,
      int completionTokens,
      int cachedTokens,
      String why) {
    try (CloseableThreadContext.Instance ctx = f.logContext()) {
      if (!finish(f, why)) {
        return;
      }
      long now = ticker.read();
      f.measureCompletion(finishReason, now, metrics);
      f.sink()
          .onComplete(finishReason, stopReason, f.prompt().length, completionTokens, cachedTokens);
      LOG.debug(
          "request {} finished ({}): {} tokens in {} ms",
          f.requestId(),
          finishReason,
          completionTokens,
          (now - f.prepared().arrivalNanos()) / 1_000_000);
    }
  }

  /** The request failed: {@code e} goes to the sink, counted under {@code reason}. */
  void fail(InFlightRequest f, String reason, ServingException e) {
    try (CloseableThreadContext.Instance ctx = f.logContext()) {
      if (!finish(f, e.getMessage())) {
        return;
      }
      metrics.rejected(reason);
      LOG.info("request {} failed ({}): {}", f.requestId(), reason, e.toString());
      f.sink().onError(e);
    }
  }

  /**
   * The client went away or its deadline passed: the work stops and nothing more is sent (counted
   * as {@code deadline} once the deadline has passed, else {@code cancelled}).
   */
  void cancel(InFlightRequest f, String why) {
    try (CloseableThreadContext.Instance ctx = f.logContext()) {
      if (!finish(f, why)) {
        return;
      }
      long deadline = f.deadlineNanos();
      boolean late = deadline != 0 && ticker.read() - deadline >= 0;
      metrics.rejected(late ? RouterMetrics.REJECT_DEADLINE : RouterMetrics.REJECT_CANCELLED);
      LOG.debug("request {} cancelled: {}", f.requestId(), why);
    }
  }

  private boolean finish(InFlightRequest f, String why) {
    InFlightRequest.Held held = f.finish();
    if (held == null) {
      return false;
    }
    onEnded.accept(f);
    try {
      held.stop(clients, why);
    } catch (RuntimeException e) { // the outcome is still sent
      LOG.warn("stopping the work of request {} failed: {}", f.requestId(), e.toString());
    }
    return true;
  }
}
