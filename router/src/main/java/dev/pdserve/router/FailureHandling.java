package dev.pdserve.router;

import dev.pdserve.core.config.KvFailurePolicy;
import dev.pdserve.core.config.RouterConfig;
import java.time.Duration;
import java.util.Objects;

/**
 * What the router does when a node fails under a request.
 *
 * @param migrationLimit times one request may continue on another decode node after its node failed
 *     or went silent; 0 = never (the request fails with UNAVAILABLE)
 * @param kvFailurePolicy a prefill node failing during the prefill or its KV push: {@code
 *     RECOMPUTE} (a fresh reservation, the prefill on another prefill node) or {@code FAIL}
 * @param streamSilenceTimeout a decode stream without a message this long is given up; zero = never
 */
public record FailureHandling(
    int migrationLimit, KvFailurePolicy kvFailurePolicy, Duration streamSilenceTimeout) {
  /** {@link RouterConfig#DEFAULTS}: 3 migrations, recompute, 10 s of silence. */
  public static final FailureHandling DEFAULTS = of(RouterConfig.DEFAULTS);

  public FailureHandling {
    Objects.requireNonNull(kvFailurePolicy, "kvFailurePolicy");
    Objects.requireNonNull(streamSilenceTimeout, "streamSilenceTimeout");
    if (migrationLimit < 0 || streamSilenceTimeout.isNegative()) {
      throw new IllegalArgumentException(
          "migration limit and stream silence timeout must be >= 0, got "
              + migrationLimit
              + " and "
              + streamSilenceTimeout);
    }
  }

  /** The handling a node's configuration asks for. */
  public static FailureHandling of(RouterConfig config) {
    return new FailureHandling(
        config.migrationLimit(), config.kvFailurePolicy(), config.streamSilenceTimeout());
  }

  public FailureHandling withMigrationLimit(int limit) {
    return new FailureHandling(limit, kvFailurePolicy, streamSilenceTimeout);
  }

  public FailureHandling withKvFailurePolicy(KvFailurePolicy policy) {
    return new FailureHandling(migrationLimit, policy, streamSilenceTimeout);
  }

  public FailureHandling withStreamSilenceTimeout(Duration timeout) {
    return new FailureHandling(migrationLimit, kvFailurePolicy, timeout);
  }
}
