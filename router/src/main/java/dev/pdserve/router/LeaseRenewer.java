package dev.pdserve.router;

import com.google.common.base.Ticker;
import com.google.common.util.concurrent.ThreadFactoryBuilder;
import dev.pdserve.core.cluster.NodeInfo;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Keeps the KV reservations of requests in flight alive: a decode node frees a reservation whose
 * lease ran out (so a router that vanished leaks nothing), and each round renews, in one
 * RenewLeases call per decode node, every reservation granted or renewed at least a third of its
 * lease ago on the clock. Rounds run on this class's own thread ({@code router-lease-renewer}) at a
 * fixed period, or only through {@link #renewDue} when the period is zero.
 */
final class LeaseRenewer implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(LeaseRenewer.class);

  private final NodeClients clients;
  private final Supplier<Collection<InFlightRequest>> requests;
  private final Ticker ticker;
  private final ScheduledExecutorService rounds; // null: no thread

  /**
   * @param requests the requests in flight, read at each round
   * @param period time between rounds on the renewer's thread; zero: no thread
   */
  LeaseRenewer(
      NodeClients clients,
      Supplier<Collection<InFlightRequest>> requests,
      Ticker ticker,
      Duration period) {
    this.clients = clients;
    this.requests = requests;
    this.ticker = ticker;
    if (period.isZero()) {
      this.rounds = null;
    } else {
      this.rounds =
          Executors.newSingleThreadScheduledExecutor(
              new ThreadFactoryBuilder()
                  .setNameFormat("router-lease-renewer")
                  .setDaemon(true)
                  .build());
      long nanos = period.toNanos();
      rounds.scheduleWithFixedDelay(this::renewDue, nanos, nanos, TimeUnit.NANOSECONDS);
    }
  }

  /** One round: renews the leases due now, one call per decode node. */
  void renewDue() {
    try {
      long now = ticker.read();
      Map<String, List<String>> due = new HashMap<>();
      Map<String, NodeInfo> byId = new HashMap<>();
      for (InFlightRequest f : requests.get()) {
        InFlightRequest.DueLease lease = f.takeDueLease(now);
        if (lease != null) {
          due.computeIfAbsent(lease.node().id(), k -> new ArrayList<>()).add(lease.transferId());
          byId.put(lease.node().id(), lease.node());
        }
      }
      for (Map.Entry<String, List<String>> e : due.entrySet()) {
        clients
            .renewLeases(byId.get(e.getKey()), e.getValue())
            .whenComplete(
                (unknown, err) -> {
                  if (err != null) {
                    LOG.warn(
                        "renewing {} KV leases on decode node {} failed: {}",
                        e.getValue().size(),
                        e.getKey(),
                        err.toString());
                  } else if (!unknown.isEmpty()) {
                    LOG.debug(
                        "decode node {} no longer holds reservations {}", e.getKey(), unknown);
                  }
                });
      }
    } catch (RuntimeException e) {
      LOG.warn("lease renewal round failed", e);
    }
  }

  @Override
  public void close() {
    if (rounds != null) {
      rounds.shutdownNow();
    }
  }
}
