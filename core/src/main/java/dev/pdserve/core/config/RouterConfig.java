package dev.pdserve.core.config;

import java.time.Duration;

/**
 * How the router rides out failed nodes and overload.
 *
 * @param migrationLimit times one request may continue on another decode node after its node failed
 *     or went silent ({@code pdserve.router.migration-limit}); 0 = never
 * @param kvFailurePolicy a prefill node failing during the prefill or its KV push: recompute
 *     elsewhere, or fail the request ({@code pdserve.kv.failure-policy})
 * @param streamSilenceTimeout a decode stream without a message this long is given up ({@code
 *     pdserve.router.stream-silence-timeout}); zero = never
 * @param maxQueueDelay requests predicted to wait longer than this for the prefills ahead of them
 *     are refused at once ({@code pdserve.router.max-queue-delay}); zero = never
 * @param prefillTokensPerSecond one prefill node's prompt throughput the router assumes until it
 *     has measured the cluster's ({@code pdserve.router.prefill-tokens-per-second})
 * @param images what images the router takes ({@code pdserve.router.images.*})
 */
public record RouterConfig(
    int migrationLimit,
    KvFailurePolicy kvFailurePolicy,
    Duration streamSilenceTimeout,
    Duration maxQueueDelay,
    int prefillTokensPerSecond,
    ImageIntakeSettings images) {
  public static final int DEFAULT_MIGRATION_LIMIT = 3;

  /**
   * No message for this long means the node is frozen or unreachable: decode streams carry a token
   * every step (milliseconds to a few hundred ms), and the longest stalls of a healthy node seen on
   * a fully loaded 2-core machine were about 5 s (the Hazelcast suspicions of DESIGN.md §8); twice
   * that is still well inside the 20 s freeze a node stopped with SIGSTOP showed.
   */
  public static final Duration DEFAULT_STREAM_SILENCE_TIMEOUT = Duration.ofSeconds(10);

  /** The default queue delay bound as a multiple of the TTFT target. */
  public static final int MAX_QUEUE_DELAY_PER_TTFT_TARGET = 3;

  /**
   * The queue delay bound for the default TTFT target (2 s): admitted requests still meet a few
   * times the target, while the role-switch policy (which acts from 0.7 of the target) keeps room
   * to move a node over before requests are refused.
   */
  public static final Duration DEFAULT_MAX_QUEUE_DELAY =
      Duration.ofMillis(
          MAX_QUEUE_DELAY_PER_TTFT_TARGET * CoordinatorConfig.DEFAULTS.ttftTargetMillis());

  /** The coordinator's assumption for a prefill node too (docs/PERFORMANCE.md: tiny ≈ 11k/s). */
  public static final int DEFAULT_PREFILL_TOKENS_PER_SECOND = 10_000;

  public static final RouterConfig DEFAULTS =
      new RouterConfig(
          DEFAULT_MIGRATION_LIMIT,
          KvFailurePolicy.RECOMPUTE,
          DEFAULT_STREAM_SILENCE_TIMEOUT,
          DEFAULT_MAX_QUEUE_DELAY,
          DEFAULT_PREFILL_TOKENS_PER_SECOND,
          ImageIntakeSettings.DEFAULTS);

  public RouterConfig {
    if (migrationLimit < 0) {
      throw new IllegalArgumentException("migration limit must be >= 0, got " + migrationLimit);
    }
    if (kvFailurePolicy == null) {
      throw new IllegalArgumentException("a KV failure policy is needed");
    }
    if (streamSilenceTimeout == null || streamSilenceTimeout.isNegative()) {
      throw new IllegalArgumentException(
          "stream silence timeout must be >= 0, got " + streamSilenceTimeout);
    }
    if (maxQueueDelay == null || maxQueueDelay.isNegative()) {
      throw new IllegalArgumentException("max queue delay must be >= 0, got " + maxQueueDelay);
    }
    if (prefillTokensPerSecond < 1) {
      throw new IllegalArgumentException(
          "prefill tokens per second must be >= 1, got " + prefillTokensPerSecond);
    }
    if (images == null) {
      throw new IllegalArgumentException("image intake settings are needed");
    }
  }

  /** These settings with the default image intake. */
  public RouterConfig(
      int migrationLimit,
      KvFailurePolicy kvFailurePolicy,
      Duration streamSilenceTimeout,
      Duration maxQueueDelay,
      int prefillTokensPerSecond) {
    this(
        migrationLimit,
        kvFailurePolicy,
        streamSilenceTimeout,
        maxQueueDelay,
        prefillTokensPerSecond,
        ImageIntakeSettings.DEFAULTS);
  }

  /** The default queue delay bound for a TTFT target of {@code ttftTargetMillis}. */
  public static Duration maxQueueDelayFor(long ttftTargetMillis) {
    return Duration.ofMillis(MAX_QUEUE_DELAY_PER_TTFT_TARGET * ttftTargetMillis);
  }
}
