package dev.pdserve.router;

import dev.pdserve.core.serving.ServingException;
import java.util.Locale;

/**
 * What the router measures per request, as events; the wiring implements it over Prometheus ({@code
 * router.metrics.PrometheusRouterMetrics}), tests and tools may pass {@link #NONE}. Called on
 * request paths (once per streamed delta at most), so implementations must be cheap and must not
 * block. Durations are nanoseconds.
 *
 * <p>Every request the router takes ends in exactly one of {@link #finished} (a completion, any
 * finish reason) or {@link #rejected} (an error, refused at admission or failed later).
 */
public interface RouterMetrics {
  /** Measures nothing. */
  RouterMetrics NONE = new RouterMetrics() {};

  /**
   * The first generated token reached the router.
   *
   * @param ttftNanos from arrival at the router to now
   * @param promptTokens the request's prompt length (prefilled by now)
   * @param tokens tokens in this first delta
   */
  default void firstToken(long ttftNanos, int promptTokens, int tokens) {}

  /**
   * A later delta reached the router.
   *
   * @param interTokenNanos since the previous delta
   * @param tokens tokens in this delta
   */
  default void nextTokens(long interTokenNanos, int tokens) {}

  /**
   * A request ended with its completion.
   *
   * @param finishReason {@code stop}, {@code length} or {@code abort}
   * @param queueNanos arrival until the router started working on it
   * @param prefillNanos start until the first token; negative if no token came
   * @param decodeNanos first token until the last; negative if no token came
   * @param e2eNanos arrival until now
   */
  default void finished(
      String finishReason, long queueNanos, long prefillNanos, long decodeNanos, long e2eNanos) {}

  /**
   * A request ended with an error, or was refused.
   *
   * @param reason one of the {@code REJECT_*} reasons, or a status class ({@link #reasonOf})
   */
  default void rejected(String reason) {}

  /**
   * A request continued on another node because one failed under it, or because a draining decode
   * node moved its sequence.
   *
   * @param reason one of the {@code MIGRATION_*} reasons
   */
  default void migrated(String reason) {}

  /** Its decode stream broke (the node died, shut down, or its connection was reset). */
  String MIGRATION_DECODE_NODE_LOST = "decode_node_lost";

  /**
   * Its decode node no longer held its reservation (NOT_FOUND: it expired while the node was
   * frozen, or was released): nothing of it runs there, so it continues elsewhere.
   */
  String MIGRATION_DECODE_STATE_LOST = "decode_state_lost";

  /** Its decode stream went silent (a frozen or unreachable node). */
  String MIGRATION_DECODE_NODE_SILENT = "decode_node_silent";

  /** Its prefill node failed during the prefill or its KV push: recomputed elsewhere. */
  String MIGRATION_PREFILL_NODE_LOST = "prefill_node_lost";

  /** A draining decode node moved its sequence (a role switch or a shutdown). */
  String MIGRATION_DRAIN = "drain";

  String REJECT_INVALID_ARGUMENT = "invalid_argument";
  String REJECT_QUEUE_FULL = "queue_full";
  String REJECT_NO_PREFILL_NODE = "no_prefill_node";
  String REJECT_NO_DECODE_NODE = "no_decode_node";
  String REJECT_KV_EXHAUSTED = "kv_exhausted";
  String REJECT_DEADLINE = "deadline";
  String REJECT_CANCELLED = "cancelled";
  String REJECT_SHUTTING_DOWN = "shutting_down";

  /** Refused at admission: its predicted wait for the prompts ahead exceeded the bound. */
  String REJECT_OVERLOADED = "overloaded";

  /** It lost its decode node more often than the migration limit allows. */
  String REJECT_MIGRATION_LIMIT = "migration_limit";

  /** It lost its decode node and no other node could continue it. */
  String REJECT_MIGRATION_FAILED = "migration_failed";

  /** Routed experts the request needs have no live expert shard (not a worker's fault). */
  String REJECT_EXPERTS_UNAVAILABLE = "experts_unavailable";

  String REJECT_INTERNAL = "internal";

  /**
   * The reason for an error that has no more specific one: its status class in lower case ({@code
   * deadline} for DEADLINE_EXCEEDED); invalid arguments for validation exceptions, internal for
   * anything else.
   */
  static String reasonOf(Throwable error) {
    if (error instanceof ServingException se) {
      return se.kind() == ServingException.Kind.DEADLINE_EXCEEDED
          ? REJECT_DEADLINE
          : se.kind().name().toLowerCase(Locale.ROOT);
    }
    if (error
        instanceof IllegalArgumentException) { // includes the sampler's InvalidRequestException
      return REJECT_INVALID_ARGUMENT;
    }
    return REJECT_INTERNAL;
  }
}
