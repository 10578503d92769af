package dev.pdserve.router.http;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * An {@link ApiExchange} for one request with a body and no headers, recording every response it
 * was given (a well-behaved handler gives exactly one).
 */
final class RecordingExchange implements ApiExchange {
  /** One {@link #sendJson}. */
  record Response(int status, JsonNode body) {}

  private final String method;
  private final String path;
  private final byte[] body;
  final List<Response> responses = new ArrayList<>();
  int eventStreams;

  RecordingExchange(String method, String path, byte[] body) {
    this.method = method;
    this.path = path;
    this.body = body;
  }

  @Override
  public String method() {
    return method;
  }

  @Override
  public String path() {
    return path;
  }

  @Override
  public String header(String name) {
    return null;
  }

  @Override
  public byte[] body() {
    return body;
  }

  @Override
  public void sendJson(int status, Map<String, String> headers, JsonNode json) {
    responses.add(new Response(status, json));
  }

  @Override
  public void startEvents(Map<String, String> headers) {
    eventStreams++;
  }

  @Override
  public void sendEvent(String data) {}

  @Override
  public void endEvents() {}

  @Override
  public void onClientGone(Runnable onGone) {}
}
