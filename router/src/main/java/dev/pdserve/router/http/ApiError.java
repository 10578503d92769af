package dev.pdserve.router.http;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.core.serving.ExpertsUnavailableException;
import dev.pdserve.core.serving.ServingException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * An error as the OpenAI API reports it: an HTTP status and {@code {"error": {"message", "type",
 * "param", "code"}}}. Thrown while a request is parsed; {@link #of(ServingException, String)} maps
 * the router's errors (by their {@link ServingException.Kind}) at the edge.
 */
class ApiError extends RuntimeException {
  private static final long serialVersionUID = 1L;

  static final String INVALID_REQUEST = "invalid_request_error";
  static final String CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded";

  /** How the router's refusals for load begin (its forecast says the wait and when to retry). */
  private static final String OVERLOADED = "router overloaded";

  private static final Pattern RETRY_AFTER_MS = Pattern.compile("retry after (\\d+) ms");

  /**
   * A leading request field in a validation message: {@code top_p must be ...}, {@code stop[2]
   * ...}.
   */
  private static final Pattern LEADING_FIELD = Pattern.compile("^([a-z_]+)(\\[\\d+\\])?[ .:]");

  private final int status;
  private final String type;
  private final String param;
  private final String code;
  private final int retryAfterSeconds;

  ApiError(
      int status, String type, String message, String param, String code, int retryAfterSeconds) {
    super(message);
    this.status = status;
    this.type = type;
    this.param = param;
    this.code = code;
    this.retryAfterSeconds = retryAfterSeconds;
  }

  /** 400 naming the offending request field. */
  static ApiError badRequest(String param, String message) {
    return new ApiError(400, INVALID_REQUEST, message, param, null, 0);
  }

  static ApiError notFound(String message, String code) {
    return new ApiError(404, INVALID_REQUEST, message, null, code, 0);
  }

  /**
   * The HTTP form of a router error.
   *
   * @param promptParam the field that holds the prompt ({@code messages} or {@code prompt}), named
   *     by errors about the prompt such as the context length
   */
  static ApiError of(ServingException e, String promptParam) {
    String m = e.getMessage();
    return switch (e.kind()) {
      case INVALID_ARGUMENT, FAILED_PRECONDITION -> {
        if (m.startsWith("This model's maximum context length")) {
          yield new ApiError(400, INVALID_REQUEST, m, promptParam, CONTEXT_LENGTH_EXCEEDED, 0);
        }
        yield badRequest(fieldOf(m, promptParam), m);
      }
      case NOT_FOUND -> notFound(m, "model_not_found");
      case ALREADY_EXISTS -> new ApiError(409, INVALID_REQUEST, m, null, "duplicate_request_id", 0);
      case RESOURCE_EXHAUSTED ->
          new ApiError(
              429,
              "rate_limit_error",
              m,
              null,
              m.startsWith(OVERLOADED) ? "overloaded" : "queue_full",
              retryAfterSeconds(m));
      case UNAVAILABLE ->
          new ApiError(
              503,
              "service_unavailable_error",
              m,
              null,
              e instanceof ExpertsUnavailableException ? "experts_unavailable" : "no_capacity",
              1);
      case DEADLINE_EXCEEDED -> new ApiError(504, "timeout_error", m, null, "deadline_exceeded", 0);
      case CANCELLED -> new ApiError(499, "cancelled_error", m, null, "cancelled", 0);
      case INTERNAL -> internal(m);
    };
  }

  static ApiError internal(String message) {
    return new ApiError(500, "server_error", message, null, null, 0);
  }

  /**
   * The request field a validation message starts with, if any ({@code messages[1].role ...} →
   * messages).
   */
  private static String fieldOf(String message, String promptParam) {
    Matcher f = LEADING_FIELD.matcher(message);
    if (!f.find()) {
      return null;
    }
    String field = f.group(1);
    return field.equals("prompt") || field.equals("prompt_token_ids") ? promptParam : field;
  }

  /** Seconds from the router's "retry after N ms" hint, at least 1. */
  private static int retryAfterSeconds(String message) {
    Matcher r = RETRY_AFTER_MS.matcher(message);
    return r.find() ? (int) Math.max(1, (Long.parseLong(r.group(1)) + 999) / 1000) : 1;
  }

  int status() {
    return status;
  }

  String type() {
    return type;
  }

  String param() {
    return param;
  }

  String code() {
    return code;
  }

  /** The Retry-After header's seconds, 0 for none. */
  int retryAfterSeconds() {
    return retryAfterSeconds;
  }

  /** {@code {"error": {...}}}. */
  ObjectNode body() {
    ObjectNode root = JsonNodeFactory.instance.objectNode();
    ObjectNode error = root.putObject("error");
    error.put("message", getMessage());
    error.put("type", type);
    error.put("param", param);
    error.put("code", code);
    return root;
  }
}
