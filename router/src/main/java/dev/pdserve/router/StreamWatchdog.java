package dev.pdserve.router;

import com.google.common.base.Ticker;
import com.google.common.util.concurrent.ThreadFactoryBuilder;
import java.time.Duration;
import java.util.Collection;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Gives up decode streams whose node stopped answering (frozen, or unreachable without the
 * connection breaking): each round, a request whose stream has sent nothing for {@link
 * FailureHandling#streamSilenceTimeout()} — or for {@link #GONE_NODE_SILENCE} once its node has
 * left the registry (the cluster's own failure detector, about 5 s) — is handed to the {@link
 * DecodeStreamFollower}, which cancels the stream and continues the request on another decode node.
 * Silence is measured on the router's {@link Ticker} from the stream's opening or its last message.
 * Rounds run on this class's own thread ({@code router-stream-watchdog}) at a fixed period, or only
 * through {@link #check} when the period is zero; a zero timeout turns it off.
 */
final class StreamWatchdog implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(StreamWatchdog.class);

  /**
   * How long a stream whose node has left the registry may stay silent: a healthy stream sends a
   * token per decode step, so a second without one from a node the cluster declared gone is no
   * scheduling hiccup.
   */
  static final Duration GONE_NODE_SILENCE = Duration.ofSeconds(1);

  private final Supplier<Collection<InFlightRequest>> requests;
  private final DecodeStreamFollower follower;
  private final Ticker ticker;
  private final long timeoutNanos;
  private final ScheduledExecutorService rounds; // null: no thread

  /**
   * @param requests the requests in flight, read at each round
   * @param period time between rounds on the watchdog's thread; zero: no thread
   */
  StreamWatchdog(
      Supplier<Collection<InFlightRequest>> requests,
      DecodeStreamFollower follower,
      Ticker ticker,
      Duration timeout,
      Duration period) {
    this.requests = requests;
    this.follower = follower;
    this.ticker = ticker;
    this.timeoutNanos = timeout.toNanos();
    if (period.isZero() || timeout.isZero()) {
      this.rounds = null;
    } else {
      this.rounds =
          Executors.newSingleThreadScheduledExecutor(
              new ThreadFactoryBuilder()
                  .setNameFormat("router-stream-watchdog")
                  .setDaemon(true)
                  .build());
      long nanos = period.toNanos();
      rounds.scheduleWithFixedDelay(this::check, nanos, nanos, TimeUnit.NANOSECONDS);
    }
  }

  /** One round: gives up the streams silent too long now. */
  void check() {
    if (timeoutNanos == 0) {
      return;
    }
    long now = ticker.read();
    long gone = Math.min(timeoutNanos, GONE_NODE_SILENCE.toNanos());
    for (InFlightRequest f : requests.get()) {
      try {
        follower.giveUpIfSilent(f, now, timeoutNanos, gone);
      } catch (RuntimeException e) { // the next round looks again
        LOG.warn("checking the decode stream of {} failed", f.requestId(), e);
      }
    }
  }

  @Override
  public void close() {
    if (rounds != null) {
      rounds.shutdownNow();
    }
  }
}
