package dev.pdserve.router;

import com.google.common.base.Ticker;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.engine.PromptRenderer;
import java.time.Duration;
import java.util.Objects;

/**
 * What a {@link Router} is built from. Start from {@link #of} (no metrics, no prefix-aware routing,
 * the system clock, lease renewal every 100 ms) and change what differs with the {@code with…}
 * methods.
 *
 * @param options admission limits and prefill attempts
 * @param nodes the cluster's nodes the router routes to
 * @param clients the calls to prefill and decode nodes
 * @param renderer prompts to token ids
 * @param model the served model (context length, vocabulary)
 * @param metrics what the router measures per request
 * @param prefixRouting prefix-aware routing and local prefill
 * @param ticker the clock deadlines, the queue-deadline check and lease renewal read (nanoseconds);
 *     the adapters compute deadlines on it too ({@link Router#ticker()})
 * @param leaseRenewalPeriod how often the lease renewer's thread runs a round; {@link
 *     Duration#ZERO}: no thread (a test runs rounds itself)
 */
public record RouterSettings(
    RouterOptions options,
    ClusterView nodes,
    NodeClients clients,
    PromptRenderer renderer,
    ModelConfig model,
    RouterMetrics metrics,
    PrefixRouting prefixRouting,
    Ticker ticker,
    Duration leaseRenewalPeriod) {
  /** How often leases are checked unless configured otherwise (each is renewed every lease/3). */
  public static final Duration DEFAULT_LEASE_RENEWAL_PERIOD = Duration.ofMillis(100);

  public RouterSettings {
    Objects.requireNonNull(options, "options");
    Objects.requireNonNull(nodes, "nodes");
    Objects.requireNonNull(clients, "clients");
    Objects.requireNonNull(renderer, "renderer");
    Objects.requireNonNull(model, "model");
    Objects.requireNonNull(metrics, "metrics");
    Objects.requireNonNull(prefixRouting, "prefixRouting");
    Objects.requireNonNull(ticker, "ticker");
    Objects.requireNonNull(leaseRenewalPeriod, "leaseRenewalPeriod");
    if (leaseRenewalPeriod.isNegative()) {
      throw new IllegalArgumentException(
          "lease renewal period must be >= 0, got " + leaseRenewalPeriod);
    }
  }

  /** The router over these nodes and clients, with defaults for everything else. */
  public static RouterSettings of(
      RouterOptions options,
      ClusterView nodes,
      NodeClients clients,
      PromptRenderer renderer,
      ModelConfig model) {
    return new RouterSettings(
        options,
        nodes,
        clients,
        renderer,
        model,
        RouterMetrics.NONE,
        PrefixRouting.disabled(),
        Ticker.systemTicker(),
        DEFAULT_LEASE_RENEWAL_PERIOD);
  }

  public RouterSettings withMetrics(RouterMetrics m) {
    return new RouterSettings(
        options, nodes, clients, renderer, model, m, prefixRouting, ticker, leaseRenewalPeriod);
  }

  public RouterSettings withPrefixRouting(PrefixRouting p) {
    return new RouterSettings(
        options, nodes, clients, renderer, model, metrics, p, ticker, leaseRenewalPeriod);
  }

  public RouterSettings withTicker(Ticker t) {
    return new RouterSettings(
        options, nodes, clients, renderer, model, metrics, prefixRouting, t, leaseRenewalPeriod);
  }

  public RouterSettings withLeaseRenewalPeriod(Duration period) {
    return new RouterSettings(
        options, nodes, clients, renderer, model, metrics, prefixRouting, ticker, period);
  }
}
