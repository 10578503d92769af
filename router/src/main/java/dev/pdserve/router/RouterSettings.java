package dev.pdserve.router;

import com.google.common.base.Ticker;
import dev.pdserve.core.config.RouterConfig;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.engine.PromptRenderer;
import java.time.Duration;
import java.util.Objects;

/**
 * What a {@link Router} is built from. Start from {@link #of} (no metrics, no prefix-aware routing,
 * the system clock, background rounds every 100 ms, the default failure handling and overload
 * limits) and change what differs with the {@code with…} methods.
 *
 * @param options admission limits and prefill attempts
 * @param nodes the cluster's nodes the router routes to
 * @param clients the calls to prefill and decode nodes
 * @param renderer prompts to token ids
 * @param model the served model (context length, vocabulary)
 * @param metrics what the router measures per request
 * @param prefixRouting prefix-aware routing and local prefill
 * @param ticker the clock deadlines, the queue-deadline check, lease renewal, the silent-stream
 *     watchdog and the queue delay forecast read (nanoseconds); the adapters compute deadlines on
 *     it too ({@link Router#ticker()})
 * @param roundPeriod how often the router's background threads run a round (lease renewal, the
 *     silent-stream watchdog); {@link Duration#ZERO}: no threads (a test runs rounds itself)
 * @param failures what happens when a prefill or decode node fails under a request
 * @param overload when requests are refused for load
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
    Duration roundPeriod,
    FailureHandling failures,
    OverloadLimits overload) {
  /** How often background rounds run unless configured otherwise (leases renew every lease/3). */
  public static final Duration DEFAULT_ROUND_PERIOD = Duration.ofMillis(100);

  public RouterSettings {
    Objects.requireNonNull(options, "options");
    Objects.requireNonNull(nodes, "nodes");
    Objects.requireNonNull(clients, "clients");
    Objects.requireNonNull(renderer, "renderer");
    Objects.requireNonNull(model, "model");
    Objects.requireNonNull(metrics, "metrics");
    Objects.requireNonNull(prefixRouting, "prefixRouting");
    Objects.requireNonNull(ticker, "ticker");
    Objects.requireNonNull(roundPeriod, "roundPeriod");
    Objects.requireNonNull(failures, "failures");
    Objects.requireNonNull(overload, "overload");
    if (roundPeriod.isNegative()) {
      throw new IllegalArgumentException("round period must be >= 0, got " + roundPeriod);
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
        DEFAULT_ROUND_PERIOD,
        FailureHandling.DEFAULTS,
        OverloadLimits.DEFAULTS);
  }

  public RouterSettings withMetrics(RouterMetrics m) {
    return new RouterSettings(
        options,
        nodes,
        clients,
        renderer,
        model,
        m,
        prefixRouting,
        ticker,
        roundPeriod,
        failures,
        overload);
  }

  public RouterSettings withPrefixRouting(PrefixRouting p) {
    return new RouterSettings(
        options,
        nodes,
        clients,
        renderer,
        model,
        metrics,
        p,
        ticker,
        roundPeriod,
        failures,
        overload);
  }

  public RouterSettings withTicker(Ticker t) {
    return new RouterSettings(
        options,
        nodes,
        clients,
        renderer,
        model,
        metrics,
        prefixRouting,
        t,
        roundPeriod,
        failures,
        overload);
  }

  public RouterSettings withRoundPeriod(Duration period) {
    return new RouterSettings(
        options,
        nodes,
        clients,
        renderer,
        model,
        metrics,
        prefixRouting,
        ticker,
        period,
        failures,
        overload);
  }

  public RouterSettings withFailureHandling(FailureHandling f) {
    return new RouterSettings(
        options,
        nodes,
        clients,
        renderer,
        model,
        metrics,
        prefixRouting,
        ticker,
        roundPeriod,
        f,
        overload);
  }

  public RouterSettings withOverloadLimits(OverloadLimits o) {
    return new RouterSettings(
        options,
        nodes,
        clients,
        renderer,
        model,
        metrics,
        prefixRouting,
        ticker,
        roundPeriod,
        failures,
        o);
  }

  /** The failure handling and overload limits a node's configuration asks for. */
  public RouterSettings configuredBy(RouterConfig config) {
    return withFailureHandling(FailureHandling.of(config))
        .withOverloadLimits(OverloadLimits.of(config));
  }
}
