package dev.pdserve.router;

import dev.pdserve.core.config.RouterConfig;
import java.time.Duration;
import java.util.Objects;

/**
 * When the router refuses requests for load ({@link OverloadGuard}).
 *
 * @param maxQueueDelay a request predicted to wait longer than this for the prompts ahead of it is
 *     refused at once with RESOURCE_EXHAUSTED; zero = never
 * @param prefillTokensPerSecond one prefill node's prompt throughput assumed until the router has
 *     measured the cluster's
 */
public record OverloadLimits(Duration maxQueueDelay, double prefillTokensPerSecond) {
  /** {@link RouterConfig#DEFAULTS}: 6 s, 10 000 tokens/s per prefill node. */
  public static final OverloadLimits DEFAULTS = of(RouterConfig.DEFAULTS);

  public OverloadLimits {
    Objects.requireNonNull(maxQueueDelay, "maxQueueDelay");
    if (maxQueueDelay.isNegative() || !(prefillTokensPerSecond > 0)) {
      throw new IllegalArgumentException(
          "max queue delay must be >= 0 and prefill tokens per second > 0, got "
              + maxQueueDelay
              + " and "
              + prefillTokensPerSecond);
    }
  }

  /** The limits a node's configuration asks for. */
  public static OverloadLimits of(RouterConfig config) {
    return new OverloadLimits(config.maxQueueDelay(), config.prefillTokensPerSecond());
  }

  /** No refusal for load. */
  public static OverloadLimits off() {
    return new OverloadLimits(Duration.ZERO, RouterConfig.DEFAULT_PREFILL_TOKENS_PER_SECOND);
  }
}
