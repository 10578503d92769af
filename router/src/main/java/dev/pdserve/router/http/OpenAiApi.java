package dev.pdserve.router.http;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.core.auth.AccessControl;
import dev.pdserve.core.auth.Route;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.engine.PromptRenderer;
import dev.pdserve.router.InFlightRequest;
import dev.pdserve.router.Router;
import dev.pdserve.router.images.ImageIntake;
import java.io.IOException;
import java.util.HashMap;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The OpenAI-compatible API over {@link Router}: routes a request by method and path, translates it
 * and delegates, as the gRPC adapter does. Transport-free: it sees an {@link ApiExchange}.
 *
 * <ul>
 *   <li>{@code POST /v1/chat/completions}, {@code POST /v1/completions} (both may stream)
 *   <li>{@code GET /v1/models}, {@code GET /v1/models/{id}}, {@code GET /health}
 * </ul>
 *
 * A client that disconnects before its answer is complete cancels the request (its KV is freed).
 */
final class OpenAiApi {
  private static final Logger LOG = LogManager.getLogger(OpenAiApi.class);

  /** Request header: the request's id (as vLLM takes it); the response echoes it. */
  static final String REQUEST_ID_HEADER = "X-Request-Id";

  /** Request header: a deadline in milliseconds; past it the request ends with 504. */
  static final String TIMEOUT_HEADER = "X-Request-Timeout-Ms";

  private final AccessControl access;
  private final Router router;
  private final PromptRenderer renderer;
  private final String modelName;
  private final OpenAiRequests requests;
  private final long startedSeconds = System.currentTimeMillis() / 1000;

  OpenAiApi(Router router, PromptRenderer renderer, int chatMaxTokensCap) {
    this(router, renderer, chatMaxTokensCap, AccessControl.open());
  }

  /** As above, every request first checked by {@code access} ({@code /health} as health). */
  OpenAiApi(Router router, PromptRenderer renderer, int chatMaxTokensCap, AccessControl access) {
    this(router, renderer, chatMaxTokensCap, router.model().name(), ImageIntake.defaults(), access);
  }

  /**
   * @param modelName the name the model is served under
   */
  OpenAiApi(Router router, PromptRenderer renderer, int chatMaxTokensCap, String modelName) {
    this(
        router,
        renderer,
        chatMaxTokensCap,
        modelName,
        ImageIntake.defaults(),
        AccessControl.open());
  }

  OpenAiApi(Router router, PromptRenderer renderer, int chatMaxTokensCap, ImageIntake images) {
    this(router, renderer, chatMaxTokensCap, router.model().name(), images, AccessControl.open());
  }

  /**
   * @param modelName the name the model is served under
   * @param images how chat image parts are taken in
   * @param access checks every request first ({@code /health} as health)
   */
  OpenAiApi(
      Router router,
      PromptRenderer renderer,
      int chatMaxTokensCap,
      String modelName,
      ImageIntake images,
      AccessControl access) {
    this.access = access;
    this.router = router;
    this.renderer = renderer;
    this.modelName = modelName;
    this.requests =
        new OpenAiRequests(router.model(), modelName, renderer, chatMaxTokensCap, images);
  }

  void handle(ApiExchange ex) {
    try {
      // Before routing: without a key, even an unknown path answers 401, revealing nothing.
      Route route = "/health".equals(ex.path()) ? Route.HEALTH : Route.PUBLIC;
      AccessControl.Decision d = access.check(route, ex.header(AccessControl.AUTHORIZATION));
      if (!d.allowed()) {
        sendError(ex, new Unauthorized(d.message()));
        return;
      }
      route(ex);
    } catch (ApiError e) {
      sendError(ex, e);
    } catch (RuntimeException e) {
      LOG.error("{} {} failed", ex.method(), ex.path(), e);
      sendError(ex, ApiError.internal("internal error (see the router's log)"));
    }
  }

  private void route(ApiExchange ex) {
    String path = ex.path();
    switch (path) {
      case "/v1/chat/completions" -> {
        requireMethod(ex, "POST");
        generate(
            ex,
            "chatcmpl-",
            requests::chat,
            req -> new ChatResponse(ex, req, renderer.tokenizer()));
      }
      case "/v1/completions" -> {
        requireMethod(ex, "POST");
        generate(
            ex,
            "cmpl-",
            requests::completion,
            req -> new CompletionResponse(ex, req, renderer.tokenizer()));
      }
      case "/v1/models" -> {
        requireMethod(ex, "GET");
        ObjectNode list = OpenAiResponse.JSON.createObjectNode();
        list.put("object", "list");
        list.putArray("data").add(modelCard());
        ex.sendJson(200, Map.of(), list);
      }
      case "/health" -> {
        requireMethod(ex, "GET");
        if (router.refusal().isPresent()) {
          // draining: load balancers take this replica out while its requests finish
          ex.sendJson(
              503,
              Map.of(),
              OpenAiResponse.JSON
                  .createObjectNode()
                  .put("status", "shutting_down")
                  .put("message", router.refusal().get()));
          return;
        }
        ex.sendJson(200, Map.of(), OpenAiResponse.JSON.createObjectNode().put("status", "ok"));
      }
      default -> {
        if (path.startsWith("/v1/models/")) {
          requireMethod(ex, "GET");
          String id = path.substring("/v1/models/".length());
          if (!id.equals(modelName)) {
            throw ApiError.notFound(
                "The model `" + id + "` does not exist. This server serves `" + modelName + "`.",
                "model_not_found");
          }
          ex.sendJson(200, Map.of(), modelCard());
          return;
        }
        throw ApiError.notFound(
            "Invalid URL ("
                + ex.method()
                + " "
                + path
                + "); the API has POST /v1/chat/completions, POST /v1/completions and GET /v1/models",
            null);
      }
    }
  }

  private ObjectNode modelCard() {
    ObjectNode m = OpenAiResponse.JSON.createObjectNode();
    m.put("id", modelName);
    m.put("object", "model");
    m.put("created", startedSeconds);
    m.put("owned_by", "pdserve");
    m.put("root", modelName);
    m.put("max_model_len", router.model().maxPositions());
    return m;
  }

  private static void requireMethod(ApiExchange ex, String method) {
    if (!ex.method().equals(method)) {
      throw new MethodNotAllowed(
          method, "Method " + ex.method() + " is not allowed for " + ex.path() + "; use " + method);
    }
  }

  /** 405 with the {@code Allow} header. */
  static final class MethodNotAllowed extends ApiError {
    private static final long serialVersionUID = 1L;
    final String allow;

    MethodNotAllowed(String allow, String message) {
      super(405, INVALID_REQUEST, message, null, "method_not_allowed", 0);
      this.allow = allow;
    }
  }

  /** 401 with {@code WWW-Authenticate: Bearer}, as OpenAI answers a missing or wrong key. */
  static final class Unauthorized extends ApiError {
    private static final long serialVersionUID = 1L;

    Unauthorized(String message) {
      super(401, INVALID_REQUEST, message, null, "invalid_api_key", 0);
    }
  }

  interface Parser {
    ApiRequest parse(JsonNode body, String id, long deadlineNanos);
  }

  private void generate(
      ApiExchange ex,
      String idPrefix,
      Parser parser,
      Function<ApiRequest, OpenAiResponse> responses) {
    JsonNode body = parseBody(ex.body());
    String given = ex.header(REQUEST_ID_HEADER);
    String id =
        idPrefix
            + (given == null || given.isBlank()
                ? UUID.randomUUID().toString().replace("-", "")
                : given.trim());
    ApiRequest req = parser.parse(body, id, deadline(ex));
    OpenAiResponse sink = responses.apply(req);
    try (CloseableThreadContext.Instance ctx =
        CloseableThreadContext.put(LogContext.REQUEST_ID, id)) {
      InFlightRequest flight;
      try {
        flight = router.submit(req.generate(), sink, req.deadlineNanos());
      } catch (ServingException e) {
        throw ApiError.of(e, req.promptParam());
      } catch (IllegalArgumentException e) {
        throw ApiError.badRequest(null, e.getMessage());
      }
      LOG.debug("{} {} submitted (stream={})", ex.method(), ex.path(), req.stream());
      ex.onClientGone(() -> flight.cancel("the HTTP client disconnected"));
    }
  }

  private static JsonNode parseBody(byte[] body) {
    if (body.length == 0) {
      throw ApiError.badRequest(null, "the request body is empty; send a JSON object");
    }
    JsonNode node;
    try {
      node = OpenAiResponse.JSON.readTree(body);
    } catch (JsonProcessingException e) {
      throw ApiError.badRequest(
          null, "the request body is not valid JSON: " + e.getOriginalMessage());
    } catch (IOException e) {
      throw ApiError.badRequest(null, "the request body could not be read: " + e.getMessage());
    }
    if (node == null || !node.isObject()) {
      throw ApiError.badRequest(null, "the request body must be a JSON object");
    }
    return node;
  }

  private long deadline(ApiExchange ex) {
    String t = ex.header(TIMEOUT_HEADER);
    if (t == null || t.isBlank()) {
      return 0;
    }
    long ms;
    try {
      ms = Long.parseLong(t.trim());
    } catch (NumberFormatException e) {
      throw ApiError.badRequest(
          null, TIMEOUT_HEADER + " must be a whole number of milliseconds, got '" + t + "'");
    }
    if (ms <= 0) {
      throw ApiError.badRequest(null, TIMEOUT_HEADER + " must be > 0, got " + ms);
    }
    return router.ticker().read() + TimeUnit.MILLISECONDS.toNanos(ms);
  }

  /** Sends {@code err} as OpenAI's error document with its status (and Retry-After / Allow). */
  static void sendError(ApiExchange ex, ApiError err) {
    Map<String, String> headers = new HashMap<>();
    if (err.retryAfterSeconds() > 0) {
      headers.put("Retry-After", Integer.toString(err.retryAfterSeconds()));
    }
    if (err instanceof MethodNotAllowed m) {
      headers.put("Allow", m.allow);
    }
    if (err instanceof Unauthorized) {
      headers.put("WWW-Authenticate", AccessControl.CHALLENGE);
    }
    ex.sendJson(err.status(), headers, err.body());
  }
}
