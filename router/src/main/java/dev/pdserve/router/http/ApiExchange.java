package dev.pdserve.router.http;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Map;

/**
 * One HTTP request and its response, as {@link OpenAiApi} sees it (the transport is {@link
 * OpenAiHttpServer}'s). A response is either one JSON document or a server-sent event stream;
 * exactly one of {@link #sendJson} or {@link #startEvents} ... {@link #endEvents} is called.
 * Methods may be called from any thread, but not concurrently for one exchange.
 */
interface ApiExchange {
  String method();

  /** The path without the query string. */
  String path();

  /** A request header (case-insensitive name), or null. */
  String header(String name);

  byte[] body();

  /** Sends a whole JSON response. */
  void sendJson(int status, Map<String, String> headers, JsonNode body);

  /** Sends 200 and the headers of a {@code text/event-stream}. */
  void startEvents(Map<String, String> headers);

  /** Sends {@code data: <data>} and a blank line, flushed. */
  void sendEvent(String data);

  /** Ends the event stream. */
  void endEvents();

  /**
   * Runs {@code onGone} once if the client disconnects before the response is complete (at once if
   * it already has).
   */
  void onClientGone(Runnable onGone);
}
