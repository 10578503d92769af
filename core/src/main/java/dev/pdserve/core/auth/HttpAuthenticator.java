package dev.pdserve.core.auth;

import com.sun.net.httpserver.Authenticator;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpPrincipal;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

/**
 * {@link AccessControl} on a JDK HTTP server (the metrics endpoint): {@code /metrics} is a {@link
 * Route#METRICS} route, the exporter's {@code /-/healthy} a {@link Route#HEALTH} one. A refused
 * request gets 401 with {@code WWW-Authenticate: Bearer} and the reason as plain text.
 */
public final class HttpAuthenticator extends Authenticator {
  private final AccessControl access;

  public HttpAuthenticator(AccessControl access) {
    this.access = access;
  }

  @Override
  public Result authenticate(HttpExchange exchange) {
    String path = exchange.getRequestURI().getPath();
    Route route = path.startsWith("/-/healthy") ? Route.HEALTH : Route.METRICS;
    AccessControl.Decision d =
        access.check(route, exchange.getRequestHeaders().getFirst(AccessControl.AUTHORIZATION));
    if (d.allowed()) {
      return new Success(new HttpPrincipal("pdserve", "pdserve"));
    }
    byte[] body = (d.message() + "\n").getBytes(StandardCharsets.UTF_8);
    exchange.getResponseHeaders().set("WWW-Authenticate", AccessControl.CHALLENGE);
    exchange.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
    try {
      exchange.sendResponseHeaders(401, body.length);
      exchange.getResponseBody().write(body);
    } catch (IOException e) {
      // the client went away; nothing to tell it
    } finally {
      exchange.close();
    }
    return new Failure(401);
  }
}
